"""Getting datasets in (`download`) and the synthetic data ftpipe makes itself."""
