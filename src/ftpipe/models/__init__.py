"""Models: where base models come from (`sources`, the download stage only) and how stages load them (`loading`)."""
