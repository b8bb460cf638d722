"""Learned models — entity-resolution matcher, triage/department classifier, clinical NER — each with train,
evaluate, save/load and a model card; arriving with the resolution and triage work."""
