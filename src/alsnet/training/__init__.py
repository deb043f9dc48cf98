"""Training: the recipe, Lightning, one fold, whole experiments, splits and run folders.

Imports data, model, engine and evaluation; nothing above.
"""
