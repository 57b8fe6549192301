"""The data sets, one module each: a module of this package that declares a module-level
``DATASET`` (a :class:`~memevae.data.registry.DataSet`) is a data set of memevae, found by
:mod:`memevae.data.registry`; adding a data set is adding one module here."""
