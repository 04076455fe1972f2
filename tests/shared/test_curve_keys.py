"Making the bus's CURVE keys (shared/curve_keys.py): what the web, brains and tails each need, secrets private."
import stat

import zmq.auth

from shared.curve_keys import main


def test_keys_for_the_web_and_its_clients_with_the_clients_authorized(tmp_path, capsys):
    keys = tmp_path / "bus"
    main([str(keys)])
    names = {p.name for p in keys.iterdir()}
    assert {"server.key", "server.key_secret", "client.key", "client.key_secret", "authorized"} <= names
    client_public, _ = zmq.auth.load_certificate(keys / "client.key")
    [authorized] = list((keys / "authorized").iterdir())
    assert zmq.auth.load_certificate(authorized)[0] == client_public
    for secret in keys.glob("*.key_secret"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, f"{secret.name} is readable by others"
    assert f"BUS_CURVE_DIR={keys}" in capsys.readouterr().out


def test_running_it_again_keeps_the_servers_keys_and_authorizes_another_client(tmp_path):
    keys = tmp_path / "bus"
    main([str(keys)])
    server = (keys / "server.key_secret").read_bytes()
    main([str(keys)])
    assert (keys / "server.key_secret").read_bytes() == server, "clients already out there must still trust the web"
    assert len(list((keys / "authorized").iterdir())) == 1, "client.key is made anew under the same name"
