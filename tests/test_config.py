"""Configuration mistakes are refused at start, one line each, exit status 2, no traceback;
`hubgate config check` shows every effective setting and where it came from, secrets masked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hubgate.cli import app as cli_app
from hubgate.config import Settings


def hubgate(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def settings_of(out: str) -> dict[str, str]:
    """`config check`'s lines as {key: "value  (source)"}."""
    return {line.split(" = ")[0].strip(): line.split(" = ", 1)[1] for line in out.splitlines() if " = " in line}


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hubgate.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("prot = 8500", "prot: unknown setting (did you mean port?); expected one of host, port, data,"),
        ("port = 70000", "port: got 70000; expected a port number from 0 to 65535"),
        ("port = 'eighty'", "port: got 'eighty'; expected a port number from 0 to 65535"),
        ("workers = 0", "workers: got 0; expected a number of processes from 1 to 64"),
        ("log_level = 'loud'", "log_level: got 'loud'; expected one of 'critical', 'error', 'warning', 'info', 'debug' or 'trace'"),
        ("offline = 'maybe'", "offline: got 'maybe'; expected true or false"),
        ("public_url = 'hub.example.org'", "public_url: got 'hub.example.org'; expected an http:// or https:// URL"),
        ("database_url = 'nonsense'", "database_url: got a value; expected an SQLAlchemy URL such as postgresql+psycopg://user@host/db"),
        ("[mirror]\nrevision_ttl = -1", "mirror.revision_ttl: got -1; expected a number of seconds, 0 or more"),
        ("[mirror]\nrestricted = 'admin'", "mirror.restricted: unknown setting (did you mean restricted_access?); expected one of"),
        ("[[upstream]]\nname = 'hub'\nurl = 'https://huggingface.co'\ntokn_env = 'HF_TOKEN'",
         "upstream[0].tokn_env: unknown setting (did you mean token_env?); expected one of name, url, token_env,"),
        ("[[upstream]]\nname = 'hub'", "upstream[0].url: missing; expected an http:// or https:// URL"),
        ("[[upstream]]\nname = 'a'\nurl = 'https://a.example'\n[[upstream]]\nname = 'a'\nurl = 'https://b.example'",
         "upstream: got [{'name': 'a', 'url': 'https://a.example'}, {'name': 'a', 'url': 'https://b.example'}]; "
         "expected upstreams with distinct names (a used twice)"),
        ("[http]\naccel_redirect_prefix = '/_hubgate_blobs/'",
         "http: got {'accel_redirect_prefix': '/_hubgate_blobs/'}; expected trusted_proxies to list the nginx in front"),
        ("[http]\naccel_redirect_prefix = '/../blobs/'\ntrusted_proxies = ['127.0.0.1']",
         "http.accel_redirect_prefix: got '/../blobs/'; expected a URL path starting and ending with /"),
        ("port = \n[mirror]", "not valid TOML: Invalid value (at line 1, column 8); expected TOML"),
    ],
)
def test_config_file_mistakes(tmp_path: Path, data: Path, toml: str, message: str) -> None:
    config = write(tmp_path, toml)
    for command in (("serve",), ("config", "check"), ("user", "add", "x")):
        status, out, err = hubgate(*command, "--config", str(config), "--data", str(data))
        assert status == 2, (command, out, err)
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {config}: {message}"), lines
    assert not data.exists()  # nothing was created from a configuration that was refused


def test_every_mistake_is_one_line(tmp_path: Path, data: Path) -> None:
    config = write(tmp_path, "prot = 1\nworkers = -1\n[mirror]\nnegative_ttl = 'x'\n")
    status, _, err = hubgate("serve", "--config", str(config), "--data", str(data))
    assert status == 2
    lines = sorted(err.splitlines())
    assert len(lines) == 3
    assert lines[0].startswith(f"error: {config}: mirror.negative_ttl: got 'x'; expected a number of seconds, 0 or more")
    assert lines[1].startswith(f"error: {config}: prot: unknown setting (did you mean port?); expected one of host, port, data,")
    assert lines[2] == f"error: {config}: workers: got -1; expected a number of processes from 1 to 64"


def test_missing_config_file(tmp_path: Path, data: Path) -> None:
    missing = tmp_path / "hubgate.tml"
    status, _, err = hubgate("serve", "--config", str(missing), "--data", str(data))
    assert (status, err) == (2, f"error: --config: {missing}: no such file; expected the path of a TOML config file\n")
    status, _, err = hubgate("config", "check", "--data", str(data), env={"HUBGATE_CONFIG": str(missing)})
    assert (status, err) == (
        2, f"error: HUBGATE_CONFIG (environment): {missing}: no such file; expected the path of a TOML config file\n")
    status, _, err = hubgate("serve", "--config", str(tmp_path), "--data", str(data))
    assert (status, err) == (2, f"error: --config: {tmp_path}: is a folder; expected the path of a TOML config file\n")


def test_environment_and_flag_mistakes(tmp_path: Path, data: Path) -> None:
    status, _, err = hubgate("config", "check", "--data", str(data), env={"HUBGATE_PORT": "abc"})
    assert (status, err) == (2, "error: HUBGATE_PORT (environment): got 'abc'; expected a port number from 0 to 65535\n")
    status, _, err = hubgate("config", "check", "--data", str(data), env={"HUBGATE_MIRROR": "{nope"})
    assert (status, err) == (2, "error: HUBGATE_MIRROR (environment): not valid JSON; expected the mirror table as JSON\n")
    status, _, err = hubgate("config", "check", "--data", str(data), env={"HUBGATE_MIRROR": '{"revision_tl": 1}'})
    assert status == 2
    assert err.startswith("error: HUBGATE_MIRROR (environment): revision_tl: unknown setting (did you mean revision_ttl?)")
    status, _, err = hubgate("serve", "--port", "99999", "--data", str(data))
    assert (status, err) == (2, "error: --port: got 99999; expected a port number from 0 to 65535\n")
    status, _, err = hubgate("serve", "--workers", "0", "--data", str(data))
    assert (status, err) == (2, "error: --workers: got 0; expected a number of processes from 1 to 64\n")


def test_bad_data_paths(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    status, _, err = hubgate("user", "add", "x", "--data", str(a_file))
    assert (status, err) == (2, f"error: --data: got '{a_file}'; expected a folder, not a file\n")
    deep = tmp_path / "no" / "such" / "data"
    status, _, err = hubgate("user", "add", "x", "--data", str(deep))
    assert (status, err) == (
        2, f"error: --data: got '{deep}'; expected a folder inside an existing one ({deep.parent} does not exist)\n")
    assert not (tmp_path / "no").exists()


def test_token_env_naming_an_unset_variable(tmp_path: Path, data: Path) -> None:
    config = write(tmp_path, "[[upstream]]\nname = 'hub'\nurl = 'https://huggingface.co'\ntoken_env = 'HUBGATE_TEST_UNSET_TOKEN'\n")
    expected = (f"error: {config}: upstream[0].token_env: HUBGATE_TEST_UNSET_TOKEN is not set in the environment; "
                "expected it to hold the token for hub (or remove token_env)\n")
    for command in (("serve",), ("config", "check"), ("mirror", "pull", "some/repo")):
        status, _, err = hubgate(*command, "--config", str(config), "--data", str(data))
        assert (status, err) == (2, expected), command
    # offline, no upstream is asked anything; the admin commands do not need upstream tokens either
    assert hubgate("config", "check", "--config", str(config), "--data", str(data), env={"HUBGATE_OFFLINE": "true"})[0] == 0
    assert hubgate("user", "add", "x", "--config", str(config), "--data", str(data))[0] == 0
    status, out, _ = hubgate("config", "check", "--config", str(config), "--data", str(data),
                             env={"HUBGATE_TEST_UNSET_TOKEN": "hf_secretvalue"})
    assert status == 0 and "hf_secretvalue" not in out
    assert settings_of(out)["upstream[0].token_env"] == f"HUBGATE_TEST_UNSET_TOKEN (set; value hidden)  (file {config})"


def test_config_check_sources_and_masking(tmp_path: Path, data: Path) -> None:
    config = write(tmp_path, "port = 8500\nworkers = 3\n[mirror]\nrevision_ttl = 5\n"
                             "[[upstream]]\nname = 'hub'\nurl = 'https://user:upstreampw@hub.example'\n")
    status, out, err = hubgate("config", "check", "--config", str(config), "--data", str(data), "--workers", "2",
                               env={"HUBGATE_DATABASE_URL": "postgresql://u:dbpassword@db/hubgate", "HUBGATE_HOST": "0.0.0.0"})
    assert (status, err) == (0, "")
    settings = settings_of(out)
    assert settings["port"] == f"8500  (file {config})"
    assert settings["workers"] == "2  (flag --workers)"
    assert settings["host"] == "0.0.0.0  (env HUBGATE_HOST)"
    assert settings["log_level"] == "info  (default)"
    assert settings["mirror.revision_ttl"] == f"5.0  (file {config})"
    assert settings["mirror.negative_ttl"] == "30.0  (default)"
    assert settings["database_url"] == "postgresql://u:***@db/hubgate  (env HUBGATE_DATABASE_URL)"
    assert settings["upstream[0].url"] == f"https://user:***@hub.example  (file {config})"
    assert settings["upstream[0].timeout"] == "30.0  (default)"
    assert "dbpassword" not in out and "upstreampw" not in out
    assert out.splitlines()[-1] == "configuration OK"


def test_serve_refuses_without_traceback(tmp_path: Path) -> None:
    """The real command, in its own process: the one useful line, nothing else."""
    config = write(tmp_path, "prot = 8500\n")
    done = subprocess.run([sys.executable, "-m", "hubgate", "serve", "--config", str(config), "--data", str(tmp_path / "d")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {config}: prot: unknown setting (did you mean port?); expected one of host, port, ")
    assert "Traceback" not in done.stderr + done.stdout


def test_server_key_from_config_or_environment_is_hidden_and_checked(tmp_path: Path, data: Path) -> None:
    key = "k3y-" + "0123456789abcdef" * 3
    status, out, err = hubgate("config", "check", "--data", str(data), env={"HUBGATE_SECRET_KEY": key})
    assert (status, err) == (0, "") and key not in out
    assert settings_of(out)["secret_key"] == "*** (hidden)  (env HUBGATE_SECRET_KEY)"
    config = write(tmp_path, f"secret_key = '{key}'\n")
    status, out, _ = hubgate("config", "check", "--config", str(config), "--data", str(data))
    assert status == 0 and key not in out and settings_of(out)["secret_key"] == f"*** (hidden)  (file {config})"
    expected = "got a value; expected 32 to 512 printable ASCII characters without spaces, such as the output of `openssl rand -hex 32`"
    for value in ("too-short-a-key", key[:20] + " " + key[20:], key + "é"):
        status, _, err = hubgate("config", "check", "--data", str(data), env={"HUBGATE_SECRET_KEY": value})
        assert (status, err) == (2, f"error: HUBGATE_SECRET_KEY (environment): {expected}\n")
    config = write(tmp_path, "secret_key = 'too-short-a-key'\n")
    status, _, err = hubgate("config", "check", "--config", str(config), "--data", str(data))
    assert (status, err) == (2, f"error: {config}: secret_key: {expected}\n") and "too-short" not in err
    # a secret inside a refused table is not echoed either
    config = write(tmp_path, "[blobs]\nbackend = 's3'\nsecret_access_key = 'very-secret-value'\n")
    status, _, err = hubgate("config", "check", "--config", str(config), "--data", str(data))
    assert status == 2 and "bucket" in err and "very-secret-value" not in err


def test_server_key_configured_or_kept_in_the_data_folder(tmp_path: Path) -> None:
    key = "0123456789abcdef" * 4
    configured = Settings.load(data=tmp_path / "a", secret_key=key)
    assert configured.signing_key() == key.encode() and key not in repr(configured)
    assert not (tmp_path / "a" / "secret.key").exists()
    embedded = Settings.load(data=tmp_path / "b")
    first = embedded.signing_key()
    assert len(first) == 32 and (tmp_path / "b" / "secret.key").stat().st_mode & 0o777 == 0o600
    assert Settings.load(data=tmp_path / "b").signing_key() == first  # kept
