"""The processing pipeline: planner, chunk worker, finaliser (AWS via ``upflow.aws``)."""
