"""A pandera DataFrameModel for people.csv, used by the validate tests."""

import pandera.pandas as pa
from pandera.typing import Series


class People(pa.DataFrameModel):
    id: Series[int] = pa.Field(ge=0, unique=True)
    age: Series[int] = pa.Field(ge=18, le=120)
    city: Series[str] = pa.Field(isin=["Berlin", "Zürich", "Łódź", "東京"])
    score: Series[float] = pa.Field(ge=0.0, le=1.0, nullable=True)

    @pa.check("age")
    def age_is_not_99(cls, age: Series[int]) -> Series[bool]:
        return age != 99
