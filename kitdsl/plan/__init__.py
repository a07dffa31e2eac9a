"""The build plan: a DAG of steps, run in parallel with progress, and the image steps of a
system.

The usual calls::

    from kitdsl.plan import fetch_images, plan_images, render_plan

    print(render_plan(plan_images(system).plan))          # kitdsl plan FILE
    images = fetch_images(system, source, jobs=8)         # component -> ResolvedImage
"""

from kitdsl.plan.executor import (
    StepCancelled,
    StepContext,
    default_jobs,
    execute,
    step_error,
)
from kitdsl.plan.graph import (
    CycleError,
    Plan,
    PlanError,
    Step,
    StepFunction,
    plan_json,
    render_plan,
    render_plan_json,
)
from kitdsl.plan.images import (
    CachedImageSource,
    ImagePlan,
    ImageSource,
    ImageUse,
    ResolvedImage,
    fetch_images,
    host_platform,
    image_uses,
    plan_images,
)
from kitdsl.plan.progress import (
    LiveReporter,
    NullReporter,
    PlainReporter,
    Reporter,
    Tally,
    choose_reporter,
)

__all__ = [
    "CachedImageSource",
    "CycleError",
    "ImagePlan",
    "ImageSource",
    "ImageUse",
    "LiveReporter",
    "NullReporter",
    "PlainReporter",
    "Plan",
    "PlanError",
    "Reporter",
    "ResolvedImage",
    "Step",
    "StepCancelled",
    "StepContext",
    "StepFunction",
    "Tally",
    "choose_reporter",
    "default_jobs",
    "execute",
    "fetch_images",
    "host_platform",
    "image_uses",
    "plan_images",
    "plan_json",
    "render_plan",
    "render_plan_json",
    "step_error",
]
