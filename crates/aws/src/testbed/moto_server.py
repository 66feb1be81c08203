"""moto's server as the emulator starts it: stock moto, with four per-request costs removed
and one EKS behaviour made as AWS's (each cluster its own OIDC issuer).

moto answers every call on one Python thread. On a 1000-volume estate most of that
thread's time went to work whose result never changes between requests; each patch below
returns what the code it replaces returns, only without redoing that work:

- werkzeug logged one line per request (nobody reads it; errors still go to the log);
- the dispatcher listed moto's package directory, with a stat per entry, on every request;
- every call listed the response class's methods with `inspect.getmembers`;
- an EC2 resource's tags were found by scanning every tag of every resource in the region
  with a regular expression (`describe_tags(filters={"resource-id": [id]})`), once per
  volume or snapshot described; they are now read from the same dict by the resource's id.

One patch changes behaviour instead (`issuer_per_cluster`, below): moto gives every EKS
cluster of the process the same OIDC issuer, real EKS one per cluster.

A patch whose target this moto version lacks is skipped (said on stderr), and moto then
runs as it ships. Arguments are moto_server's (`-H HOST -p PORT`).
"""

import functools
import logging
import sys


def quiet_request_log():
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def cache_module_list():
    from moto import backends

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules


def cache_method_names():
    from moto.core import responses

    responses.method_names_from_class = functools.lru_cache(maxsize=None)(
        responses.method_names_from_class
    )


def tags_by_id():
    from moto.ec2.models.core import TaggedEC2Resource
    from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

    def get_tags(self):
        rid = self.id
        tags = self.ec2_backend.tags.get(rid) if rid else None
        if not tags:
            return []
        kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(rid), "")
        return [
            {"resource_id": rid, "key": k, "value": v, "resource_type": kind}
            for k, v in tags.items()
        ]

    TaggedEC2Resource.get_tags = get_tags


def issuer_per_cluster():
    """Unlike the patches above, this one changes what moto answers.

    moto draws one random issuer id at import and gives it to every EKS cluster
    (`ISSUER_TEMPLATE` in moto/eks/models.py), so an IAM OIDC provider made for blue
    would also be green's and a role trusting only blue's provider would admit green's
    pods. Real EKS issues one issuer per cluster, `https://oidc.eks.REGION.amazonaws.com/id/`
    followed by 32 upper-case hex digits. Each cluster here gets such an issuer, derived
    from its ARN: deterministic, distinct per cluster, account and region.
    """
    import hashlib

    from moto.eks.models import Cluster

    stock_init = Cluster.__init__

    def init(self, *args, **kwargs):
        stock_init(self, *args, **kwargs)
        region = self.arn.split(":")[3]
        digest = hashlib.md5(self.arn.encode()).hexdigest().upper()
        self.identity = {
            "oidc": {"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{digest}"}
        }

    Cluster.__init__ = init


for patch in (
    quiet_request_log,
    cache_module_list,
    cache_method_names,
    tags_by_id,
    issuer_per_cluster,
):
    try:
        patch()
    except Exception as e:  # this moto differs: run it as it ships
        print(f"baton: moto patch {patch.__name__} skipped: {e!r}", file=sys.stderr)

from moto.server import main  # noqa: E402

main(sys.argv[1:])
