"""Signed entitlements: what verifies, what is refused and why, and the meter's answers at predict
(in-process; test_metering.py runs real worker processes)."""

from __future__ import annotations

import copy
import json
import time

import pytest

from runner_image.entitlement import FIELDS, canonical, verify
from runner_image.errors import InvalidEntitlement
from runner_image.settings import entitlement_keys
from runner_image.slot import PACKAGE_FILE, file_sha256

from .conftest import auth
from .entitlements import DEPLOYMENT, Licensor, iso

SOME_MODEL = "ab" * 32


@pytest.fixture(scope="module")
def licensor() -> Licensor:
    return Licensor()


def refusal(document, licensor, **kwargs) -> InvalidEntitlement:
    with pytest.raises(InvalidEntitlement) as caught:
        verify(document, licensor.keys(), DEPLOYMENT, **kwargs)
    return caught.value


# ---------------------------------------------------------------- the canonical bytes

def test_canonical_bytes_are_the_portals():
    """federation/signing.canonical's bytes: sorted keys at every depth, no spaces, UTF-8 as is."""
    document = {"b": 1, "a": "é ✓", "c": [2, {"z": None, "y": True}], "d": {"k": "v"}}
    assert canonical(document) == '{"a":"é ✓","b":1,"c":[2,{"y":true,"z":null}],"d":{"k":"v"}}'.encode()
    assert canonical(document) == json.dumps(document, sort_keys=True, separators=(",", ":"),
                                              ensure_ascii=False).encode("utf-8")
    with pytest.raises(ValueError):  # as the portal's: NaN is not JSON
        canonical({"x": float("nan")})


# ---------------------------------------------------------------- what verifies

def test_it_verifies_a_good_document(licensor):
    document = licensor.document([SOME_MODEL], predictions=500)
    entitlement = verify(document, licensor.keys(), DEPLOYMENT)
    assert entitlement.id == document["entitlement"]["id"]
    assert entitlement.predictions == 500 and entitlement.models == {SOME_MODEL}
    assert entitlement.allows_predict
    assert entitlement.summary() == {"id": entitlement.id, "predictions": 500,
                                     "not_after": document["entitlement"]["not_after"]}


def test_it_verifies_an_unlimited_document_and_one_issued_at_the_same_time(licensor):
    document = licensor.document([SOME_MODEL], predictions=None)
    entitlement = verify(document, licensor.keys(), DEPLOYMENT)
    assert entitlement.predictions is None
    assert verify(document, licensor.keys(), DEPLOYMENT, newer_than=entitlement.issued).id == entitlement.id


def test_it_keeps_a_second_key_valid_while_runners_renew(licensor):
    old = Licensor()
    keys = {**licensor.keys(), **old.keys()}
    assert verify(old.document([SOME_MODEL]), keys, DEPLOYMENT).id
    assert verify(licensor.document([SOME_MODEL]), keys, DEPLOYMENT).id


# ---------------------------------------------------------------- what is refused

def changed(value):
    """Another value of the same kind: what someone editing the document would write."""
    if isinstance(value, bool) or value is None:
        return 5
    if isinstance(value, int):
        return value + 1
    if isinstance(value, list):
        return [*value, "cd" * 32]
    return value[:-1] + ("0" if value[-1] != "0" else "1")


@pytest.mark.parametrize("field", FIELDS)
def test_it_refuses_each_field_changed_after_signing(licensor, field):
    document = licensor.document([SOME_MODEL])
    document["entitlement"][field] = changed(document["entitlement"][field])
    error = refusal(document, licensor)
    assert error.status == 400 and error.code == "invalid_entitlement"
    if field == "kid":  # a kid this runner does not know: no key to check with
        assert error.details["reason"] == "kid"
    else:
        assert error.details["reason"] == "signature"
        assert "changed after it was signed" in error.message


@pytest.mark.parametrize("field", FIELDS)
def test_it_refuses_each_field_removed_after_signing(licensor, field):
    document = licensor.document([SOME_MODEL])
    del document["entitlement"][field]
    assert refusal(document, licensor).details["reason"] in ("signature", "kid")


def test_it_refuses_a_changed_signature_or_algorithm(licensor):
    document = licensor.document([SOME_MODEL])
    forged = copy.deepcopy(document)
    forged["sig"] = ("A" if document["sig"][0] != "A" else "B") + document["sig"][1:]
    assert refusal(forged, licensor).details["reason"] == "signature"
    not_base64 = {**document, "sig": "not base64!"}
    assert refusal(not_base64, licensor).details["reason"] == "signature"
    hmac = {**document, "alg": "HS256"}
    error = refusal(hmac, licensor)
    assert error.details["reason"] == "alg" and "EdDSA" in error.message


def test_it_refuses_what_is_not_a_signed_document(licensor):
    document = licensor.document([SOME_MODEL])
    for body in (None, [], document["entitlement"], {**document, "note": "unsigned"}):
        assert refusal(body, licensor).details["reason"] == "format"


def test_it_refuses_an_unknown_kid(licensor):
    stranger = Licensor()
    error = refusal(stranger.document([SOME_MODEL]), licensor)
    assert error.details == {"reason": "kid", "kid": stranger.kid}
    assert licensor.kid in error.message  # names the keys it knows


def test_it_refuses_a_document_signed_by_another_key_under_a_known_kid(licensor):
    stranger = Licensor()
    document = stranger.sign(licensor.body([SOME_MODEL]))  # licensor's kid, stranger's signature
    assert refusal(document, licensor).details["reason"] == "signature"


def test_it_refuses_another_deployment(licensor):
    document = licensor.document([SOME_MODEL], deployment="00000000-0000-4000-8000-000000000000")
    error = refusal(document, licensor)
    assert error.details["reason"] == "deployment"
    assert DEPLOYMENT in error.message and "00000000-0000-4000-8000-000000000000" in error.message


def test_it_refuses_an_expired_document(licensor):
    now = time.time()
    document = licensor.document([SOME_MODEL], not_before=iso(now - 7200), not_after=iso(now - 1))
    error = refusal(document, licensor)
    assert error.details["reason"] == "expired" and "ended at" in error.message


def test_it_refuses_an_older_issued_document_replayed(licensor):
    now = time.time()
    older = licensor.document([SOME_MODEL], issued=iso(now - 600))
    error = refusal(older, licensor, newer_than=now)
    assert error.status == 409 and error.details["reason"] == "replay"


def test_it_refuses_another_version(licensor):
    assert refusal(licensor.document([SOME_MODEL], v=2), licensor).details["reason"] == "version"


@pytest.mark.parametrize("overrides", [
    {"predictions": -1}, {"predictions": "10"}, {"predictions": True}, {"models": ["short"]}, {"models": "ab" * 32},
    {"id": "not-a-uuid"}, {"not_after": "tomorrow"}, {"not_after": "2099-01-01T00:00:00"},
    {"not_before": "2099-01-01T00:00:00Z"}, {"actions": "predict"},
])
def test_it_refuses_a_signed_document_whose_fields_do_not_read(licensor, overrides):
    body = {**licensor.body([SOME_MODEL]), **overrides}
    assert refusal(licensor.sign(body), licensor).details["reason"] == "format"


def test_an_expired_document_already_installed_still_reads(licensor):
    """A worker reading the installed document back checks it is authentic, not that it is current:
    the meter then answers timing_constraint."""
    now = time.time()
    document = licensor.document([SOME_MODEL], not_before=iso(now - 7200), not_after=iso(now - 1))
    assert verify(document, licensor.keys(), DEPLOYMENT, fresh=False).not_after < now


# ---------------------------------------------------------------- RUNNER_ENTITLEMENT_KEYS

def test_the_keys_setting_reads_kid_and_base64_key(licensor):
    assert entitlement_keys(licensor.keys_env()) == licensor.keys()
    assert entitlement_keys("") == {}


@pytest.mark.parametrize("raw, says", [
    ("not json", "is not JSON"),
    ('["a"]', "must be a JSON object"),
    ('{"0123456789abcdef": "***"}', "is not base64"),
    ('{"0123456789abcdef": "AAAA"}', "is 3 bytes"),
])
def test_the_keys_setting_refuses_what_is_not_a_key(raw, says):
    with pytest.raises(SystemExit, match=says):
        entitlement_keys(raw)


def test_the_keys_setting_refuses_a_key_under_the_wrong_kid(licensor):
    wrong = licensor.keys_env().replace(licensor.kid, "0123456789abcdef")
    with pytest.raises(SystemExit, match=f"the kid of this key is '{licensor.kid}'"):
        entitlement_keys(wrong)


# ---------------------------------------------------------------- the meter at predict (in process)

@pytest.fixture
def metered(make_client, scale_a, licensor):
    """A metering runner in-process, and the sha256 of the model it serves."""
    settings = {"require_entitlement": True, "deployment_id": DEPLOYMENT, "entitlement_keys": licensor.keys()}
    with make_client(scale_a, **settings) as client:
        yield client, file_sha256(scale_a / PACKAGE_FILE)


def scale(client, x=1.0):
    return client.post("/model/methods/scale", json={"x": x})


def install(client, document):
    return client.put("/model/entitlement", headers=auth(), json=document)


def test_it_refuses_every_prediction_until_an_entitlement_is_installed(metered):
    client, _ = metered
    response = scale(client)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "agreement_not_found"
    assert "no entitlement installed yet" in response.json()["error"]["message"]
    assert client.get("/model/usage", headers=auth()).json()["refused"] == 1


def test_it_refuses_a_model_the_entitlement_does_not_list(metered, licensor):
    client, model = metered
    assert install(client, licensor.document([SOME_MODEL])).status_code == 200
    response = scale(client)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "usage_prohibited" and error["details"]["model"] == model
    assert install(client, licensor.document([SOME_MODEL, model])).status_code == 200
    assert scale(client).status_code == 200


def test_it_refuses_an_entitlement_without_predict(metered, licensor):
    client, model = metered
    install(client, licensor.document([model], actions=["download"]))
    assert scale(client).json()["error"]["code"] == "usage_prohibited"


def test_it_refuses_before_not_before(metered, licensor):
    client, model = metered
    now = time.time()
    install(client, licensor.document([model], not_before=iso(now + 600), not_after=iso(now + 3600)))
    error = scale(client).json()["error"]
    assert error["code"] == "timing_constraint" and "starts at" in error["message"]


def test_it_answers_the_limit_then_usage_exhausted_with_the_details(metered, licensor):
    client, model = metered
    document = licensor.document([model], predictions=3)
    answer = install(client, document)
    assert answer.json() == {"id": document["entitlement"]["id"], "predictions": 3,
                             "not_after": document["entitlement"]["not_after"]}
    assert [scale(client).status_code for _ in range(3)] == [200, 200, 200]
    response = scale(client)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "usage_exhausted"
    assert error["message"].startswith("This deployment has used the 3 predictions its entitlement allows.")
    body = document["entitlement"]
    assert error["details"] == {"entitlement": body["id"], "agreement": body["agreement"], "used": 3, "limit": 3,
                                "not_after": body["not_after"]}


def test_every_prediction_route_is_metered(metered, licensor):
    client, model = metered
    install(client, licensor.document([model], predictions=3))
    assert scale(client).status_code == 200
    csv = client.post("/transformCSVDefault", files={"csvFile": ("x.csv", b"x\n2.0\n")},
                      headers={"Accept": "application/json"})
    assert csv.status_code == 200, csv.text
    infer = client.post("/v2/models/Scaler/infer", json={"inputs": [{"name": "x", "datatype": "FP64", "shape": [1],
                                                                     "data": [1.0]}]})
    assert infer.status_code == 200, infer.text
    exhausted = client.post("/transformJSONDefault", files={"jsonFile": ("x.json", b'{"x": 2.0}')})
    assert exhausted.status_code == 403 and exhausted.json()["error"]["code"] == "usage_exhausted"
    assert client.get("/model/usage", headers=auth()).json()["used"] == 3
    assert client.get("/v2/health/ready").status_code == 200  # not a prediction: never metered


def test_a_request_refused_before_the_model_ran_gives_its_unit_back(metered, licensor):
    client, model = metered
    install(client, licensor.document([model], predictions=1))
    assert client.post("/model/methods/scale", content=b"{not json", headers={"Content-Type": "application/json"}
                       ).status_code == 400
    assert client.post("/model/methods/scale", content=b"x", headers={"Content-Type": "text/plain"}).status_code == 415
    assert client.post("/model/methods/nope", json={"x": 1}).status_code == 404
    assert client.get("/model/usage", headers=auth()).json()["used"] == 0
    assert scale(client).status_code == 200
    assert scale(client).json()["error"]["code"] == "usage_exhausted"


def test_a_model_that_failed_counts(make_client, tmp_path, licensor):
    from . import builders

    bundle = builders.failing_bundle(tmp_path / "failing")
    settings = {"require_entitlement": True, "deployment_id": DEPLOYMENT, "entitlement_keys": licensor.keys()}
    with make_client(bundle, **settings) as client:
        install(client, licensor.document([file_sha256(bundle / PACKAGE_FILE)], predictions=5))
        assert scale(client, -1.0).status_code == 500
        assert client.get("/model/usage", headers=auth()).json()["used"] == 1


def test_the_entitlement_routes_need_the_admin_token(metered, licensor):
    client, model = metered
    document = licensor.document([model])
    assert client.put("/model/entitlement", json=document).status_code == 401
    assert client.delete("/model/entitlement").status_code == 401
    assert client.get("/model/usage").status_code == 401
    assert client.get("/model/entitlement", headers=auth("wrong-token")).status_code == 401


def test_a_body_that_is_not_json_is_refused(metered):
    client, _ = metered
    response = client.put("/model/entitlement", headers=auth(), content=b"{")
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]


def test_delete_before_any_entitlement_answers_404(metered):
    client, _ = metered
    assert client.delete("/model/entitlement", headers=auth()).status_code == 404


def test_a_revoked_entitlement_is_never_taken_back(metered, licensor):
    client, model = metered
    document = licensor.document([model])
    install(client, document)
    assert client.delete("/model/entitlement", headers=auth()).json() == {"revoked": document["entitlement"]["id"],
                                                                         "used": 0}
    again = install(client, document)
    assert again.status_code == 409 and again.json()["error"]["details"]["reason"] == "revoked"
    assert scale(client).json()["error"]["code"] == "right_to_use_revoked"


def test_a_swap_to_a_model_the_entitlement_does_not_list_is_refused_at_predict(metered, licensor, scale_b):
    client, model = metered
    install(client, licensor.document([model], predictions=10))
    assert scale(client).status_code == 200
    swapped = client.put("/model", headers=auth(), files={
        "model": ("modelpackage.zip", (scale_b / PACKAGE_FILE).read_bytes())})
    assert swapped.status_code == 200, swapped.text
    response = scale(client)
    assert response.status_code == 403 and response.json()["error"]["code"] == "usage_prohibited"
    assert response.json()["error"]["details"]["model"] == file_sha256(scale_b / PACKAGE_FILE)
    assert client.post("/model/rollback", headers=auth()).status_code == 200
    assert scale(client).json() == {"tag": "A", "y": 2.0}
