"""The experimaestro identifiers of the package's classes do not change when
a class moves between modules (``__xpmid__``): a task finished before the
move is reused, not run again (e.g. a user's trained models and indices)"""

import pytest

#: qualified name of the class -> its identifier (as of 2026-11-27)
IDENTIFIERS = {
    "splade.devices.AutoFabricConfiguration": "splade.fabric.autofabricconfiguration",
    "splade.workarounds.impact_index.BMPConverter": "splade.engines.bmpconverter",
    "splade.workarounds.impact_index.BMPIndex": "splade.engines.bmpindex",
    "splade.encoders.BinaryQueryEncoder": "splade.workarounds.binaryqueryencoder",
    "splade.engines.impact.CompressSparseIndex": "splade.engines.compresssparseindex",
    "splade.debug_teacher.DebugTeacher": "splade.debug_teacher.debugteacher",
    "splade.workarounds.xpmir.DistillationSamplesSampler": (
        "splade.workarounds.distillationsamplessampler"
    ),
    "splade.efficiency.EvaluateWithEfficiency": (
        "splade.efficiency.evaluatewithefficiency"
    ),
    "splade.engines.exhaustive.ExhaustiveIndex": "splade.engines.exhaustiveindex",
    "splade.engines.exhaustive.ExhaustiveIndexBuilder": (
        "splade.engines.exhaustiveindexbuilder"
    ),
    "splade.engines.exhaustive.ExhaustiveRetriever": (
        "splade.engines.exhaustiveretriever"
    ),
    "splade.regularizer.FlopsRegularizer": "splade.regularizer.flopsregularizer",
    "splade.workarounds.xpmir.FullRetrieverRescorer": (
        "splade.workarounds.fullretrieverrescorer"
    ),
    "splade.workarounds.xpmir.HardNegativesSampler": (
        "splade.workarounds.hardnegativessampler"
    ),
    "splade.local_import.ImportLocalCollection": (
        "splade.local_import.importlocalcollection"
    ),
    "splade.local_import.ImportLocalDocuments": (
        "splade.local_import.importlocaldocuments"
    ),
    "splade.workarounds.xpmir.InBatchNegativesScorer": (
        "splade.workarounds.inbatchnegativesscorer"
    ),
    "splade.workarounds.xpmir.InBatchNegativesTrainer": (
        "splade.workarounds.inbatchnegativestrainer"
    ),
    "splade.indexed_subset.IndexedSubset": "splade.evaluation.indexedsubset",
    "splade.workarounds.xpm_torch.LastEpochMetrics": (
        "splade.workarounds.xpm_torch.lastepochmetrics"
    ),
    "splade.local_import.LocalData": "splade.local_import.localdata",
    "splade.engines.exhaustive.MergeShards": "splade.shards.mergeshards",
    "splade.losses.PairwiseKLLoss": "splade.workarounds.xpmir.pairwiseklloss",
    "splade.teacher_scores.PickledTeacherScores": (
        "splade.teacher_scores.pickledteacherscores"
    ),
    "splade.engines.pisa.PisaConverter": "splade.engines.pisaconverter",
    "splade.engines.pisa.PisaIndex": "splade.engines.pisaindex",
    "splade.engines.pisa.PisaRetriever": "splade.engines.pisaretriever",
    "splade.workarounds.xpmir.ProcessedSampler": "splade.workarounds.processedsampler",
    "splade.workarounds.xpmir.RelevanceMeasure": (
        "splade.workarounds.xpmir.relevancemeasure"
    ),
    "splade.engines.bmp.SafeBMPConverter": "splade.engines.safebmpconverter",
    "splade.engines.bmp.SafeBMPIndex": "splade.engines.safebmpindex",
    "splade.mining.ScoreCandidates": "splade.mining.scorecandidates",
    "splade.teacher_scores.ScoredQueries": "splade.teacher_scores.scoredqueries",
    "splade.engines.exhaustive.shards.ShardIndexBuilder": (
        "splade.shards.shardindexbuilder"
    ),
    "splade.encoders.SpladeMaxEncoder": "splade.encoders.splademaxencoder",
    "splade.workarounds.xpm_torch.StaleCheckpointsCleaner": (
        "splade.reliability.stalecheckpointscleaner"
    ),
    "splade.workarounds.xpm_torch.SynchronisedValidationListener": (
        "splade.workarounds.synchronisedvalidationlistener"
    ),
    "splade.distillation.TeacherPairs": "splade.distillation.teacherpairs",
    "splade.teacher_scores.TeacherScores": "splade.teacher_scores.teacherscores",
    "splade.teacher_scores.TeacherScoresTSV": "splade.teacher_scores.teacherscorestsv",
    "splade.workarounds.xpmir.TripletsSampler": "splade.workarounds.tripletssampler",
    "splade.engines.impact.WANDIndex": "splade.engines.wandindex",
}


@pytest.mark.parametrize("name", sorted(IDENTIFIERS))
def test_identifier_is_kept(name):
    import importlib

    module, _, qualname = name.rpartition(".")
    cls = getattr(importlib.import_module(module), qualname)
    assert str(cls.__getxpmtype__().identifier) == IDENTIFIERS[name]
