"""Commands outside the pipeline's stages: ftpipe-predict (a model on new inputs), the methods ladder
(`python -m ftpipe.tools.ladder`) and merging an adapter into its base (`python -m ftpipe.tools.merge`)."""
