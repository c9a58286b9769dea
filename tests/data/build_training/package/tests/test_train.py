from demo_train.train import train


def test_majority():
    model = train([{"y": 1}, {"y": 1}, {"y": 0}], {"label": "y"})
    assert model.predict([{}, {}]) == [1, 1]
