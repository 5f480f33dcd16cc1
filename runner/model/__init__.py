"""Process models as written: BPMN XML read without the engine, forms, validation, input checks."""
