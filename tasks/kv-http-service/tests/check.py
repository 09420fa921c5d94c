import contextlib
import http.client
import json
import threading

from checklib import check, main

HOST, PORT = "127.0.0.1", 8080


def call(method, path, body=None):
    conn = http.client.HTTPConnection(HOST, PORT, timeout=10)
    try:
        # a server may answer (e.g. 413) and close before reading the whole body
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@check
def health():
    assert call("GET", "/health") == (200, b"ok")


@check
def put_get_replace():
    assert call("PUT", "/kv/alpha", b"one")[0] == 201
    assert call("GET", "/kv/alpha") == (200, b"one")
    assert call("PUT", "/kv/alpha", b"two")[0] == 200
    assert call("GET", "/kv/alpha") == (200, b"two")


@check
def binary_values_round_trip():
    blob = bytes(range(256)) * 8
    assert call("PUT", "/kv/blob", blob)[0] == 201
    assert call("GET", "/kv/blob") == (200, blob)


@check
def missing_key_is_404():
    assert call("GET", "/kv/does-not-exist")[0] == 404
    assert call("DELETE", "/kv/does-not-exist")[0] == 404


@check
def delete():
    call("PUT", "/kv/temp", b"x")
    status, body = call("DELETE", "/kv/temp")
    assert status == 204 and body == b"", (status, body)
    assert call("GET", "/kv/temp")[0] == 404


@check
def url_decoded_keys_and_listing():
    call("PUT", "/kv/user%20one", b"1")
    call("PUT", "/kv/user%2Ftwo", b"2")
    call("PUT", "/kv/zeta", b"z")
    status, body = call("GET", "/kv")
    assert status == 200
    keys = json.loads(body)["keys"]
    assert keys == sorted(keys), f"not sorted: {keys}"
    assert {"user one", "user/two", "zeta", "alpha"} <= set(keys), keys
    status, body = call("GET", "/kv?prefix=user%20")
    assert status == 200 and json.loads(body) == {"keys": ["user one"]}, body
    assert call("GET", "/kv/user%20one") == (200, b"1")


@check
def empty_key_is_400():
    assert call("PUT", "/kv/", b"v")[0] == 400


@check
def too_large_is_413_and_not_stored():
    status, _ = call("PUT", "/kv/big", b"x" * (1024 * 1024 + 1))
    assert status == 413, status
    assert call("GET", "/kv/big")[0] == 404
    assert call("PUT", "/kv/limit", b"y" * (1024 * 1024))[0] == 201


@check
def unknown_path_is_404():
    assert call("GET", "/nope")[0] == 404


@check
def concurrent_clients():
    errors = []

    def worker(i):
        try:
            for j in range(20):
                st, _ = call("PUT", f"/kv/c{i}-{j}", f"{i}:{j}".encode())
                if st != 201:
                    errors.append((i, j, st))
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:5]
    keys = json.loads(call("GET", "/kv?prefix=c")[1])["keys"]
    assert len(keys) == 160, len(keys)
    assert call("GET", "/kv/c7-3") == (200, b"7:3")


if __name__ == "__main__":
    raise SystemExit(main())
