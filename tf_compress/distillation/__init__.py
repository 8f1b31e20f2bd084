"""Knowledge distillation: a `Distiller` model, its scheduler, teacher caching.

    from tf_compress import distillation, pruning

    student = pruning.prune_model(student, pruning.PruningConfig(0.8))
    distiller = distillation.Distiller(teacher, student, alpha=0.1,
                                       temperature=4.0)
    distiller.compile("adam", keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), metrics=["accuracy"])
    distiller.fit(splits.train(), epochs=5, callbacks=[
        pruning.PruningCallback(),
        distillation.DistillationScheduler(5, end_temperature=2.0)])
    export = pruning.strip_pruning(distiller.student)
"""

from tf_compress.distillation.distillation_callbacks import DistillationScheduler
from tf_compress.distillation.distillation_callbacks import find_distiller
from tf_compress.distillation.distiller import Distiller
from tf_compress.distillation.distiller import soft_target_loss
from tf_compress.distillation.distiller import TEACHER_OUTPUTS
from tf_compress.distillation.teacher_cache import cache_teacher_logits
from tf_compress.distillation.teacher_cache import LABELS_KEY
from tf_compress.distillation.teacher_cache import TEACHER_KEY

__all__ = [
    "cache_teacher_logits", "DistillationScheduler", "Distiller",
    "find_distiller", "LABELS_KEY", "soft_target_loss", "TEACHER_KEY",
    "TEACHER_OUTPUTS",
]
