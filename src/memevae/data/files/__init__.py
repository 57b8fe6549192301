"""Readers of the data sets' files and their checksums: the official MNIST and SVHN files (and the
MNIST sample shipped in ``sample/``), CUB-200-2011 with its captions and class split, MoPoE's
PolyMNIST folders, and the md5-checked download of official files (:mod:`.remote`)."""
