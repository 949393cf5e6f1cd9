"""Decoders of model outputs that are not class scores: SSD detections (ssd), more to come."""
