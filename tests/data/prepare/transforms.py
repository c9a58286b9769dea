"""User transforms for the prepare tests (copied into the test's working directory)."""


def add_ratio(df):
    df["income_per_age"] = df["income"] / df["age"]
    return df


def boom(df):
    return _helper(df)


def _helper(df):
    raise ValueError("cannot parse income in row 3")


def not_a_frame(df):
    return df.to_dict()


def drop_label(df):
    return df.drop(columns=["approved"])


def int_columns(df):
    df[0] = 1
    return df


def leaky(df):
    raise ValueError("bad contact john.doe@example.com, card 4111 1111 1111 1111")
