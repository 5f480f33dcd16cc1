"""Server-side SVG drawing of BPMN diagrams from their diagram interchange."""
