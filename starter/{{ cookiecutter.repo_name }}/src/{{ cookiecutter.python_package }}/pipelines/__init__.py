"""The project's pipelines: data_processing -> training, and inference for new rows."""
