"""What ``mlcd train`` needs beside the stage itself.

* :mod:`.estimators`: built-in scikit-learn estimators wrapped in a preprocessing Pipeline
* :mod:`.child`: the child process that imports the user's code and fits the model
* :mod:`.runner`: runs a child (ours or the user's ``--command``), streams its log,
  beats a heartbeat and enforces ``--timeout``
* :mod:`.requirements`: pip requirements from installed versions, without MLflow's slow
  inference
"""
