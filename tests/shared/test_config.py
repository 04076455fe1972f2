"""Settings from the environment (shared/config.py)."""
from pathlib import Path

import pytest

from shared.config import Settings, ollama_url


@pytest.mark.parametrize("raw, url", [
    ("", "http://127.0.0.1:11434"),
    ("127.0.0.1:11434", "http://127.0.0.1:11434"),
    ("0.0.0.0", "http://0.0.0.0:11434"),
    (":9000", "http://127.0.0.1:9000"),
    ("http://gpu-box", "http://gpu-box:80"),
    ("https://gpu-box/", "https://gpu-box:443"),
    ("http://gpu-box:8080/ollama", "http://gpu-box:8080/ollama"),
    ("[::1]:11434", "http://[::1]:11434"),
])
def test_ollama_host_is_read_as_ollama_reads_it(raw, url):
    assert ollama_url(raw) == url


def test_settings_have_loopback_defaults_and_refuse_nonsense(tmp_path):
    s = Settings.from_env({})
    assert s.web_host == "127.0.0.1"
    assert s.bus_pub == f"ipc://{Path('data').resolve()}/bus/pub" and s.bus_sub.endswith("/data/bus/sub"), "private"
    assert Settings.from_env({"BUS_PUB_ENDPOINT": "tcp://127.0.0.1:5556"}).bus_pub == "tcp://127.0.0.1:5556"
    assert s.model == "llama3.2"
    assert s.system_prompt == "" and s.app == "", "the app's own persona, and the default app"
    assert Settings.from_env({"APP": " reading "}).app == "reading"
    assert Settings.from_env({"COMMENT_DELAY_S": "0.25"}).comment_delay_s == 0.25
    (tmp_path / "persona.txt").write_text("Be terse.\n")
    assert Settings.from_env({"SYSTEM_PROMPT": "x", "SYSTEM_PROMPT_FILE": str(tmp_path / "persona.txt")}
                             ).system_prompt == "Be terse."
    with pytest.raises(SystemExit, match="BRAIN_PARALLEL"):
        Settings.from_env({"BRAIN_PARALLEL": "lots"})
