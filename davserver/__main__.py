from davserver.cli.main import main

raise SystemExit(main())
