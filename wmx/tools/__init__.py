"""The wmx geoprocessing tools: one module per tool family, plus the generic runner in _base."""
