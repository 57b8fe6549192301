"""The metrics of the paper's Sec. 4 and App. F-I, one module each: the computation and its
:class:`~memevae.evaluation.metric.Metric` declaration (name, typed options, needs, figures).
A module added here is a metric of ``memevae evaluate``; see :mod:`memevae.evaluation.metric`."""
