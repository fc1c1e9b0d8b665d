"""From network output to fronts: post-processing of zone and front maps, the longest path of a front skeleton."""
