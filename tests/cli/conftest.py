"""The ``cli`` fixture: rnnconf's main() run in this process (fast), in a temporary directory."""
import pytest


@pytest.fixture
def cli(monkeypatch, tmp_path, capsys):
    """``cli(*argv) -> (exit status, stdout, stderr)`` running rnnconf's main() here, in a temporary directory;
    the per-call timeout it sets is restored afterwards."""
    from rnnconf.cli import main
    from rnnconf.properties import calling

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(calling, "CALL_TIMEOUT_S", calling.CALL_TIMEOUT_S)
    monkeypatch.setenv("RNNCONF_CALL_TIMEOUT", str(calling.CALL_TIMEOUT_S))
    monkeypatch.delenv("RNNCONF_EXAMPLES", raising=False)

    def run(*argv):
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run
