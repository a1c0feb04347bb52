from .builders import IRIS_SAMPLE
from .conftest import auth


def test_it_predicts_and_swaps_in_process(iris, scale_a, make_client):
    with make_client(iris) as client:
        assert client.post("/model/methods/classify", json=IRIS_SAMPLE).json() == {"species": 0}
        with open(scale_a / "modelpackage.zip", "rb") as pkg, open(scale_a / "model.proto", "rb") as proto:
            response = client.put("/model", headers=auth(), files={"model": pkg, "proto": proto})
        assert response.status_code == 200, response.text
        assert client.post("/model/methods/scale", json={"x": 1.5}).json() == {"tag": "A", "y": 3.0}


def test_it_serves_from_a_real_process_with_two_workers(iris, start_runner):
    import httpx

    runner = start_runner(iris, workers=2)
    answer = httpx.post(f"{runner.url}/model/methods/classify", json=IRIS_SAMPLE)
    assert answer.json() == {"species": 0}
