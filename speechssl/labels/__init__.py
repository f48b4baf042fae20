"""Frame labels: k-means units, label files, label quality, topic labels."""
