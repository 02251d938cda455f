"""Classic face descriptors: LBP histograms, a metric learned on them, and their fusion with
the network's score."""
