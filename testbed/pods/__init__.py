"""A small kubelet for the test cluster: pods bound to its node run as podman containers.

kwok keeps managing its own fake node (pods there are marked Running without running anything);
``PodRunner`` registers a second node, ``podman-node-0`` (label ``sensorsim.io/node=podman``,
tainted so that only pods with ``TOLERATION`` and that node selector land there), keeps it Ready
(node status and Lease heartbeats) and, for every pod the scheduler binds to it:

- resolves the container's environment as the kubelet does (literal values, downward-API
  fields, ``secretKeyRef``/``configMapKeyRef``, ``envFrom``, ``KUBERNETES_SERVICE_HOST/PORT``)
  and materialises its volumes (``emptyDir``; ``configMap``, ``secret`` and ``projected``
  items as files, with a bound service-account token from the TokenRequest API);
- finds the pod's image in podman's store or pulls it, in the background, as a kubelet does
  (``imagePullPolicy``; plain HTTP for a registry on a loopback address);
- runs the container from the pod's image, command and args with the pod's security context
  (user/group, read-only root filesystem, dropped capabilities, no privilege escalation);
- reports back to the pod's status what a kubelet would: Running with Ready from the
  readiness probe; on exit ``lastState.terminated`` with the exit code, restarts with the
  kubelet's back-off (10 s doubling to 5 min) and meanwhile
  ``waiting: CrashLoopBackOff``; on deletion it stops the container (SIGTERM, the pod's grace
  period) and removes the pod.

The one deviation, because every container shares the host's network (the test broker and
API server listen on 127.0.0.1): each container port gets a free host port, and the variables
named in ``port_env`` whose value is that port are rewritten to it; probes follow, and
``PodRunner.host_ports`` tells a test (a scraper, a client) where a pod's port is. Liveness
and startup probes are not enforced.

The parts: ``node`` (the Node object and its heartbeats), ``container_args`` (a pod spec as
``podman run`` arguments: environment, volumes, security), ``status`` (what is remembered per
pod, readiness probes, the status a kubelet reports), ``images`` (found or pulled),
``podman`` (this runner's containers),
``runner`` (the loop that brings containers in line with the bound pods).
"""

from testbed.pods.node import NODE_LABEL, NODE_NAME, TOLERATION
from testbed.pods.runner import PodRunner

__all__ = ["NODE_LABEL", "NODE_NAME", "TOLERATION", "PodRunner"]
