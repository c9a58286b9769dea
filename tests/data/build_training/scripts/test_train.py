import train


def test_has_main():
    assert callable(train.main)
