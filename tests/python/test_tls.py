"""TLS (issue 11): AMQPS with pika's SSLOptions, openssl s_client and the EXTERNAL mechanism,
HTTPS for the management API with curl, client-certificate verification, and certificate
reload on SIGHUP. The test makes its own CA and certificates with the openssl CLI.
These tests run their own broker (WARREN_BIN)."""
import json
import os
import shutil
import signal
import ssl
import subprocess
import time

import pika
import pytest

from warren_process import WarrenProcess, free_port

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl CLI")


def sh(*args, cwd):
    subprocess.run(args, cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d, server_cn="warren-1"):
    """ca.pem/ca.key, server.pem/server.key (CN server_cn, SAN 127.0.0.1 and localhost),
    client.pem/client.key (CN tlsuser), all signed by the CA."""
    d = str(d)
    if not os.path.exists(os.path.join(d, "ca.pem")):
        sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
           "ca.pem", "-days", "2", "-subj", "/CN=Warren Test CA", cwd=d)
    ext = os.path.join(d, "san.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    client_ext = os.path.join(d, "client.ext")
    with open(client_ext, "w") as f:  # v3 (webpki refuses v1 certificates), for client auth
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    for name, cn, extra in [("server", server_cn, ["-extfile", ext]),
                            ("client", "tlsuser", ["-extfile", client_ext])]:
        sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
           f"{name}.csr", "-subj", f"/CN={cn}/O=warren-tests", cwd=d)
        sh("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
           "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", *extra, cwd=d)
    return d


@pytest.fixture(scope="module")
def shared_pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_broker(tmp_path, shared_pki):
    made = []

    def make(*extra, pki=None):
        pki = pki or shared_pki
        w = WarrenProcess(os.environ["WARREN_BIN"], tmp_path / f"data{len(made)}")
        w.ssl_port = free_port()
        w.mgmt_port = free_port()
        w.pki = pki
        w.extra_args = ["--ssl-port", str(w.ssl_port),
                        "--ssl-certfile", f"{pki}/server.pem", "--ssl-keyfile", f"{pki}/server.key",
                        "--ssl-cacertfile", f"{pki}/ca.pem", "--management-port", str(w.mgmt_port),
                        "--management-ssl", *extra]
        made.append(w)
        return w.start()

    yield make
    for w in made:
        w.kill9()


def tls_params(w, client_cert=False, **kw):
    ctx = ssl.create_default_context(cafile=f"{w.pki}/ca.pem")
    if client_cert:
        ctx.load_cert_chain(f"{w.pki}/client.pem", f"{w.pki}/client.key")
    return pika.ConnectionParameters("127.0.0.1", w.ssl_port, ssl_options=pika.SSLOptions(ctx, "localhost"),
                                     connection_attempts=1, socket_timeout=5, **kw)


def test_amqps_roundtrip_with_pika(tls_broker):
    w = tls_broker()
    c = pika.BlockingConnection(tls_params(w))
    ch = c.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    bodies = [os.urandom(n) for n in (0, 1, 4095, 4096, 200_000)]
    for b in bodies:
        ch.basic_publish("", q, b)
    got = []
    for _ in bodies:
        m, _, b = ch.basic_get(q, auto_ack=True)
        got.append(b)
    assert got == bodies  # every byte, through TLS
    c.close()


def test_openssl_s_client_sees_the_certificate_and_amqp(tls_broker):
    w = tls_broker()
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{w.ssl_port}", "-CAfile",
                        f"{w.pki}/ca.pem", "-verify_return_error", "-quiet"],
                       input=b"AMQP\x00\x00\x09\x01", capture_output=True, timeout=20)
    # connection.start (class 10, method 10) comes back over TLS.
    assert b"\x00\x0a\x00\x0a" in r.stdout, (r.stdout[:100], r.stderr[-500:])


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl")
def test_https_management_with_curl(tls_broker):
    w = tls_broker()
    r = subprocess.run(["curl", "-sS", "--cacert", f"{w.pki}/ca.pem", "-u", "guest:guest",
                        f"https://127.0.0.1:{w.mgmt_port}/api/overview"], capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert "rabbitmq_version" in json.loads(r.stdout)
    # Plain HTTP on the HTTPS port gets nowhere.
    r = subprocess.run(["curl", "-sS", "-m", "5", "-u", "guest:guest",
                        f"http://127.0.0.1:{w.mgmt_port}/api/overview"], capture_output=True, timeout=20)
    assert r.returncode != 0 or b"rabbitmq_version" not in r.stdout


def test_external_mechanism_with_a_client_certificate(tls_broker):
    w = tls_broker("--ssl-verify", "verify_peer")
    assert w.ctl("add_user", "tlsuser", "unused-password").returncode == 0
    assert w.ctl("set_permissions", "tlsuser", ".*", ".*", ".*").returncode == 0
    c = pika.BlockingConnection(tls_params(w, client_cert=True, credentials=pika.credentials.ExternalCredentials()))
    ch = c.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"as tlsuser")
    assert ch.basic_get(q, auto_ack=True)[2] == b"as tlsuser"
    assert "tlsuser" in w.ctl("list_connections", "user").stdout
    c.close()
    # Without a certificate EXTERNAL is not offered: refused.
    with pytest.raises(pika.exceptions.AMQPError):
        pika.BlockingConnection(tls_params(w, credentials=pika.credentials.ExternalCredentials()))
    # verify_peer without fail_if_no_peer_cert: PLAIN without a certificate still works.
    pika.BlockingConnection(tls_params(w)).close()


def test_fail_if_no_peer_cert_refuses_clients_without_one(tls_broker):
    w = tls_broker("--ssl-verify", "verify_peer", "--ssl-fail-if-no-peer-cert")
    with pytest.raises(Exception):
        pika.BlockingConnection(tls_params(w))
    pika.BlockingConnection(tls_params(w, client_cert=True)).close()


def served_cn(w):
    """The common name of the certificate the AMQPS port serves now."""
    import socket
    ctx = ssl.create_default_context(cafile=f"{w.pki}/ca.pem")
    with socket.create_connection(("127.0.0.1", w.ssl_port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            return dict(x[0] for x in t.getpeercert()["subject"])["commonName"]


def test_certificate_reload_on_sighup(tls_broker, tmp_path):
    own = tmp_path / "own-pki"
    own.mkdir()
    w = tls_broker(pki=make_pki(own))

    assert served_cn(w) == "warren-1"
    make_pki(own, server_cn="warren-2")  # new server certificate, same paths
    w.proc.send_signal(signal.SIGHUP)
    for _ in range(50):
        if served_cn(w) == "warren-2":
            break
        time.sleep(0.1)
    assert served_cn(w) == "warren-2"
    # A broken file on reload keeps the old certificate.
    with open(f"{w.pki}/server.key", "w") as f:
        f.write("garbage")
    w.proc.send_signal(signal.SIGHUP)
    # The reload has happened (and failed) once the broker says so; no sleep standing in for it.
    for _ in range(100):
        if "TLS reload failed, the old certificate stays" in w.log():
            break
        time.sleep(0.05)
    assert "TLS reload failed, the old certificate stays" in w.log()
    assert served_cn(w) == "warren-2"
    assert w.proc.poll() is None


def test_certificate_reload_with_warrenctl(tls_broker, tmp_path):
    """`warrenctl reload_tls` does what SIGHUP does, and says when it could not."""
    own = tmp_path / "own-pki"
    own.mkdir()
    w = tls_broker(pki=make_pki(own))

    assert served_cn(w) == "warren-1"
    make_pki(own, server_cn="warren-3")
    r = w.ctl("reload_tls")
    assert r.returncode == 0, r.stderr
    assert "Reloading TLS certificates on node" in r.stdout
    assert served_cn(w) == "warren-3"  # in place when the command returns
    with open(f"{w.pki}/server.key", "w") as f:
        f.write("garbage")
    r = w.ctl("reload_tls")
    assert r.returncode == 70, (r.returncode, r.stdout, r.stderr)
    assert "TLS reload failed, the old certificate stays" in r.stderr
    assert served_cn(w) == "warren-3"


def test_reload_tls_without_tls_is_refused(tmp_path):
    w = WarrenProcess(os.environ["WARREN_BIN"], tmp_path / "plain").start()
    try:
        r = w.ctl("reload_tls")
        assert r.returncode == 70
        assert "TLS is not configured" in r.stderr
    finally:
        w.kill9()


def test_mqtt_over_tls_with_paho(tls_broker):
    from mqtt_client import Client, body
    mqtt_port, mqtts_port = free_port(), free_port()
    w = tls_broker("--mqtt-port", str(mqtt_port), "--mqtt-ssl-port", str(mqtts_port))
    sub = Client("tls-sub", v5=True, port=mqtts_port)
    sub.c.tls_set(ca_certs=f"{w.pki}/ca.pem")
    sub.connect()
    assert sub.subscribe("tls/#", qos=1) == [1]
    pub = Client("tls-pub", port=mqtts_port)
    pub.c.tls_set(ca_certs=f"{w.pki}/ca.pem")
    pub.connect()
    plain = Client("plain-pub", port=mqtt_port).connect()
    sizes = [0, 1, 16_383, 16_385, 300_000]  # around and past one TLS record
    for i, n in enumerate(sizes):
        pub.publish(f"tls/{i}", body(i, n), qos=1)
    plain.publish("tls/plain", b"from plain MQTT", qos=1)
    got = [sub.get() for _ in range(len(sizes) + 1)]
    assert [(m.topic, m.payload) for m in got] == (
        [(f"tls/{i}", body(i, n)) for i, n in enumerate(sizes)] + [("tls/plain", b"from plain MQTT")])
    for c in (sub, pub, plain):
        c.close()


def amqp_over_tls(w, cert_dir):
    """TLS handshake with cert_dir's client certificate, the AMQP header, the first 7 bytes back."""
    import socket
    ctx = ssl.create_default_context(cafile=f"{w.pki}/ca.pem")
    ctx.load_cert_chain(f"{cert_dir}/client.pem", f"{cert_dir}/client.key")
    with socket.create_connection(("127.0.0.1", w.ssl_port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            t.sendall(b"AMQP\x00\x00\x09\x01")
            return t.recv(7)


def test_a_client_certificate_from_an_untrusted_ca_fails_the_handshake(tls_broker, tmp_path):
    w = tls_broker("--ssl-verify", "verify_peer", "--ssl-fail-if-no-peer-cert")
    # The port is alive and verifies: a certificate from the trusted CA gets connection.start.
    assert amqp_over_tls(w, w.pki)[:3] == b"\x01\x00\x00"
    # The same names, signed by another CA: refused by a TLS alert (with TLS 1.3 the client
    # learns it at its first read), not by a dead port, a timeout or an AMQP-level close.
    other = tmp_path / "other-ca"
    other.mkdir()
    make_pki(other)
    with pytest.raises(ssl.SSLError) as e:
        amqp_over_tls(w, other)
    assert "ALERT" in str(e.value).upper() or "CERTIFICATE" in str(e.value).upper(), e.value
    assert amqp_over_tls(w, w.pki)[:3] == b"\x01\x00\x00"  # and the listener is still up
