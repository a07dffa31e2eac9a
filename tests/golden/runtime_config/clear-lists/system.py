"""``[]`` in the entry clears what the label (and the image) would give.

``capabilities=[]``, ``binds=[]``, ``tmpfs=[]``, ``devices=[]``, ``env=[]`` and ``command=[]``
are set, so they win; the ``.add`` lists only apply to the label's list and are ignored when
the entry sets the whole list. With no args and no env, Go's omitempty leaves both keys out.
Checked by hand.
"""

from kitdsl import Onboot, System

system = System(
    onboot=[
        Onboot(
            name="bare",
            image="example.org/full:1",
            capabilities=[],
            capabilities_add=["CAP_KILL"],
            binds=[],
            binds_add=["/added:/added"],
            tmpfs=[],
            devices=[],
            env=[],
            command=[],
        )
    ]
)
target = ("onboot", 0)
