from davserver.cli import main

raise SystemExit(main())
