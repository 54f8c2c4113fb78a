"""Training-framework faces over the grading engine, each usable in-process or against a running
``rm-service serve``:

* :mod:`rm_service.integrations.trl`: reward functions for TRL's ``GRPOTrainer``
  (``RMServiceReward``, ``RemoteReward``, per-component functions).
* :mod:`rm_service.integrations.verl`: verl's ``compute_score`` (per sample and batch).
* :mod:`rm_service.integrations.openrlhf`: OpenRLHF's ``reward_func`` for
  ``--reward.remote_url path.py``.
* :mod:`rm_service.integrations.ray`: offline grading of a Ray Data ``Dataset``
  (``rm-service grade --engine ray``).
* :mod:`rm_service.integrations.ray_serve`: the HTTP service as a Ray Serve deployment.

Nothing here imports torch, Ray or a training framework; the modules are imported on demand.
"""
