"""Who is this (identity) and may they do X to repo Y (policy): decided here, once."""
