"""Object stores never overwrite: LocalStore on disk, S3Store against a real SeaweedFS."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import httpx
import pytest

from service.settings import Settings
from service.storage import LocalStore, ObjectExists, ObjectNotFound, open_store
from service.storage.keys import model_key, product_key, raw_key
from service.storage.s3 import S3Store

KEY = "products/2026/11/21/20261121T1203Z_L_v1.fits"


@pytest.fixture
def local(tmp_path):
    return LocalStore(f"file://{tmp_path}/store")


@pytest.fixture
def s3(s3_bucket):
    server, bucket = s3_bucket
    return S3Store(
        f"s3://{bucket}/pre/fix", endpoint_url=server.endpoint_url, region=server.region,
        **server.client_kwargs(),
    )


@pytest.fixture(params=["local", "s3"])
def store(request):
    return request.getfixturevalue(request.param)


def test_keys_are_readable_by_time():
    t = datetime(2026, 11, 21, 12, 3, 41, tzinfo=UTC)
    assert product_key(t, "gong", "LE", "20261120-101010-abcd1234", "fits") == (
        "products/2026/11/21/20261121T1203Z_gong-LE_20261120-101010-abcd1234.fits"
    )
    assert raw_key(t, "gong", "20261121120341Lh.fits.fz") == "raw/gong/2026/11/21/20261121120341Lh.fits.fz"
    assert model_key("v1") == "models/v1/model.onnx"


def test_keys_refuse_naive_times_and_escapes(local):
    with pytest.raises(ValueError):
        product_key(datetime(2026, 11, 21), "gong", "LE", "v1", "fits")
    for bad in ("../x", "/abs", "a//b", "a/./b", ""):
        with pytest.raises(ValueError):
            local.put(bad, b"x")


def test_put_get_roundtrip(store):
    uri = store.put(KEY, b"first", "application/fits")
    assert store.get(KEY) == b"first"
    assert store.exists(KEY)
    assert store.key_for(uri) == KEY
    assert store.uri_for(KEY) == uri


def test_same_content_retry_returns_same_uri(store):
    assert store.put(KEY, b"same") == store.put(KEY, b"same")


def test_conditional_put_never_overwrites(store):
    store.put(KEY, b"original")
    with pytest.raises(ObjectExists) as info:
        store.put(KEY, b"different")
    assert info.value.key == KEY
    assert info.value.existing_sha256 is not None
    assert store.get(KEY) == b"original"


def test_unconditional_put_replaces(store):
    store.put("cache/x.json", b"1")
    store.put("cache/x.json", b"2", if_none_match=False)
    assert store.get("cache/x.json") == b"2"


def test_missing_object(store):
    assert not store.exists("raw/2026/01/01/none.fits.fz")
    with pytest.raises(ObjectNotFound):
        store.get("raw/2026/01/01/none.fits.fz")


def test_key_for_refuses_foreign_uri(store):
    with pytest.raises(ValueError):
        store.key_for("s3://elsewhere/products/x.fits")


def test_local_relative_url_resolves_against_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = LocalStore("file://var/store")
    uri = store.put(KEY, b"x")
    assert (tmp_path / "var" / "store" / KEY).read_bytes() == b"x"
    assert uri == (tmp_path / "var" / "store" / KEY).as_uri()


def test_local_leaves_no_temporary_files(local):
    local.put(KEY, b"a")
    with pytest.raises(ObjectExists):
        local.put(KEY, b"b")
    assert [p.name for p in local.path_for(KEY).parent.iterdir()] == [KEY.rsplit("/", 1)[1]]


def test_local_racing_writers_one_wins(local):
    results: list[str] = []

    def write(i: int) -> None:
        try:
            local.put(KEY, f"writer {i}".encode() * 1000)
            results.append(f"ok {i}")
        except ObjectExists:
            results.append("exists")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r.startswith("ok")]
    assert len(winners) == 1
    assert local.get(KEY) == f"writer {winners[0].split()[1]}".encode() * 1000


def test_seaweedfs_enforces_if_none_match(s3_bucket):
    # The server itself, not our client code, refuses the second conditional write.
    server, bucket = s3_bucket
    client = server.client()
    client.put_object(Bucket=bucket, Key="k", Body=b"1", IfNoneMatch="*")
    with pytest.raises(Exception) as info:
        client.put_object(Bucket=bucket, Key="k", Body=b"2", IfNoneMatch="*")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"1"


def test_s3_uri_has_bucket_and_prefix(s3):
    assert s3.put(KEY, b"x") == f"s3://{s3.bucket}/pre/fix/{KEY}"


def test_s3_presigned_url_is_fetchable(s3):
    s3.put(KEY, b"presigned body", "application/fits")
    response = httpx.get(s3.url_for(KEY, expires=60), timeout=10)
    assert response.status_code == 200
    assert response.content == b"presigned body"


def test_open_store_from_settings(s3_bucket, tmp_path, monkeypatch):
    server, bucket = s3_bucket
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    store = open_store(Settings(store_url=f"s3://{bucket}", s3_endpoint_url=server.endpoint_url))
    assert isinstance(store, S3Store)
    store.put("raw/x", b"1")
    assert store.get("raw/x") == b"1"
    assert isinstance(open_store(Settings(store_url=f"file://{tmp_path}")), LocalStore)
