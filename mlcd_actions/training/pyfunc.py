"""MLflow ``python_function`` wrappers for models that are not scikit-learn estimators.

``mlcd train`` pickles these classes *by value* (``cloudpickle.register_pickle_by_value``),
so a served model does not need mlcd-actions installed.
"""

from __future__ import annotations

import mlflow.pyfunc


class PredictWrapper(mlflow.pyfunc.PythonModel):
    """Any object with ``predict(frame)`` (the training contract's model)."""

    # no type-hint validation: the wrapped model takes the frame its signature describes
    _skip_type_hint_validation = True

    def __init__(self, model) -> None:
        self.model = model

    def predict(self, context, model_input, params=None):
        return self.model.predict(model_input)


class SavedModelWrapper(mlflow.pyfunc.PythonModel):
    """An MLflow model a ``--command`` saved to a directory, shipped as an artifact."""

    _skip_type_hint_validation = True

    def load_context(self, context) -> None:
        self.inner = mlflow.pyfunc.load_model(context.artifacts["model"])

    def predict(self, context, model_input, params=None):
        return self.inner.predict(model_input)
