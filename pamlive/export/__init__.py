"""Exports for archives: ``pamlive export tethys`` writes a Tethys Detections document
(docs/contracts.md, "Archiving"; docs/tethys.md) from the detection log or Raven tables."""
