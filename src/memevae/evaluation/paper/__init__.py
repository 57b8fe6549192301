"""The comparison with the paper: its published numbers (:mod:`.reference`: Tables 3, 4 and 5 of
Joy et al., ICLR 2022) and the report over many evaluated runs that sets ours beside them
(:mod:`.report`, ``memevae report``). Each metric writes its own section of that report
(:meth:`memevae.evaluation.metric.Metric.report`); this package gives the layout they share."""
