"""The container files follow the rules of a production stack, read from the files
themselves (no Docker daemon needed): every image pinned, every service health-checked
and restarted, davserver started only once its dependencies are healthy, data in named
volumes, no secret written in the compose file, and an image that runs unprivileged
with a health check on `/readyz`."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
REQUIRED = re.compile(r"^\$\{[A-Z0-9_]+:\?[^}]+\}$")  # ${VAR:?message}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY|TOKEN")
DATA_PATHS = {
    "postgres": "/var/lib/postgresql/data",
    "minio": "/data",
    "davserver": "/data",
}


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found = compose()["services"]
    assert set(found) == {"davserver", "postgres", "minio", "redis"}
    return found


def dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_every_image_is_pinned() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name, service in services().items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and "/" not in tag, (name, image)
        assert re.search(r"\d", tag), (name, image)  # a version, not a moving name
    assert services()["davserver"]["image"] == f"davserver:{version}"
    assert services()["minio"]["image"].split(":")[1].startswith("RELEASE.")
    assert re.fullmatch(r"16\.\d+.*", services()["postgres"]["image"].split(":")[1])


def test_every_service_is_health_checked_and_restarted() -> None:
    for name, service in services().items():
        assert service["restart"] == "unless-stopped", name
        check = service["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) > 1, name
        assert not check.get("disable"), name
    readyz = " ".join(services()["davserver"]["healthcheck"]["test"])
    assert "/readyz" in readyz


def test_davserver_waits_for_healthy_dependencies() -> None:
    davserver = services()["davserver"]
    assert davserver["depends_on"] == {
        name: {"condition": "service_healthy"} for name in ("postgres", "minio", "redis")
    }
    assert int(davserver["environment"]["DAVSERVER_STARTUP_WAIT"]) > 0


def test_data_lives_in_named_volumes() -> None:
    declared = set(compose()["volumes"])
    for name, path in DATA_PATHS.items():
        mounts = {
            m.split("#")[0].strip().split(":")[1]: m.split(":")[0]
            for m in services()[name]["volumes"]
        }
        assert path in mounts, (name, mounts)
        assert mounts[path] in declared, (name, mounts[path])  # named, not a bind mount


def test_no_secret_is_written_in_the_compose_file() -> None:
    for name, service in services().items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert REQUIRED.match(str(value)), (name, key, value)
            if "://" in str(value) and "@" in str(value):
                # credentials in a URL: the password part must be a required reference
                userinfo = str(value).split("://", 1)[1].rsplit("@", 1)[0]
                password = userinfo.partition(":")[2]
                assert REQUIRED.match(password), (name, key, value)
    example = (DOCKER / ".env.example").read_text()
    referenced = set(re.findall(r"\$\{([A-Z0-9_]+):\?", (DOCKER / "compose.yaml").read_text()))
    for variable in referenced:
        assert re.search(rf"^{variable}=", example, re.M), variable
    assert "docker/.env" in (ROOT / ".gitignore").read_text().split()


def test_the_image_runs_unprivileged_with_a_readiness_check() -> None:
    lines = dockerfile()
    base = next(line.split()[1] for line in lines if line.startswith("FROM "))
    image, _, tag = base.partition(":")
    assert image == "python" and re.fullmatch(r"3\.11\.\d+-slim-bookworm", tag), base
    user = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert user and user[-1].split(":")[0] not in ("root", "0"), user
    assert any(line.startswith("VOLUME") and "/data" in line for line in lines)
    check = next(line for line in lines if line.startswith("HEALTHCHECK"))
    assert "/readyz" in check and "curl" not in check
    assert any(line.startswith("RUN pip install --no-cache-dir .") for line in lines)
    assert "EXPOSE 8080" in lines
    cmd = next(line for line in lines if line.startswith("CMD "))
    assert '"serve"' in cmd and '"0.0.0.0"' in cmd and '"/data"' in cmd
