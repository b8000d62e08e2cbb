"""Kubernetes basics shared by every other package: the base layer of Shoal.

Nothing here imports another Shoal package (import-linter enforces it); everything above may
import it.  One behaviour per concept:

* :mod:`~shoal.kube.errors`: ``ApiError`` / ``FieldError`` and their ``Status`` form.
* :mod:`~shoal.kube.selectors`, :mod:`~shoal.kube.fieldselectors`: label and field selectors
  with Kubernetes' parsing and matching semantics.
* :mod:`~shoal.kube.quantity`: ``resource.Quantity`` parsing.
* :mod:`~shoal.kube.times`: RFC 3339 timestamps (``metav1.Time``, ``MicroTime``, nanoseconds)
  and human durations.
* :mod:`~shoal.kube.clock`: the injected :class:`~shoal.kube.clock.Clock` and a fake one.
* :mod:`~shoal.kube.objects`: ``Obj`` (an object as a JSON dict), typed metadata, accessors.
* :mod:`~shoal.kube.files`: atomic file writes.
* :mod:`~shoal.kube.remotecommand`: the ``pods/log`` / ``pods/exec`` wire format shared by the
  API server and the node agent.
* :mod:`~shoal.kube.spdy`, :mod:`~shoal.kube.spdysession`: SPDY/3.1 framing and the server
  side of a SPDY session (``kubectl port-forward``).
"""
