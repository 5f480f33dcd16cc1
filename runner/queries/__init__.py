"""Read models that return plain data: task lists and diagram state."""
