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

The same calls take Keras 3 models (`import keras`): `Distiller` then
returns a `Keras3Distiller`, and the pruning, QAT and scheduler callbacks
drive it in the same way. A Keras 3 Distiller also takes
`augmentation=ConsistentAugmentation(mixup=..., shift=..., noise=...)`:
seeded views drawn in each training step, seen by both the teacher (run
live) and the student ("function matching").
"""

from tf_compress.distillation.compiled_loss import check_compiled_loss
from tf_compress.distillation.compiled_loss import replica_mean_loss
from tf_compress.distillation.consistent_views import ConsistentAugmentation
from tf_compress.distillation.consistent_views import make_views
from tf_compress.distillation.distillation_callbacks import DistillationScheduler
from tf_compress.distillation.distillation_callbacks import find_distiller
from tf_compress.distillation.distiller import Distiller
from tf_compress.distillation.distiller import soft_target_loss
from tf_compress.distillation.distiller import TEACHER_OUTPUTS
from tf_compress.distillation.keras3_distiller import Keras3Distiller
from tf_compress.distillation.keras3_distiller import keras3_soft_target_loss
from tf_compress.distillation.teacher_cache import cache_teacher_logits
from tf_compress.distillation.teacher_cache import LABELS_KEY
from tf_compress.distillation.teacher_cache import TEACHER_KEY

__all__ = [
    "cache_teacher_logits", "check_compiled_loss", "ConsistentAugmentation",
    "DistillationScheduler", "Distiller", "find_distiller",
    "Keras3Distiller", "keras3_soft_target_loss", "LABELS_KEY", "make_views",
    "replica_mean_loss", "soft_target_loss", "TEACHER_KEY",
    "TEACHER_OUTPUTS",
]
