"""Model files bundled with the package (data only). Names and formats: mobilefer.runtime.refs.

See MODEL_CARD.md in the repository for data, recipe, accuracy and limits.
"""
