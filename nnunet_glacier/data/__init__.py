"""The data: CaFFe records and labels, the tasks and their label encodings, synthetic scenes, the experiments."""
