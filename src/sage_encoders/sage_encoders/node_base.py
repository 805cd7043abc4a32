"""What the three encoder node shells share: parameters, diagnostics, metabolic gating, ATP,
and (vision, audio) following the live model version.

rclpy lives here and in the *_node modules only; the cores stay pure.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
import os
import threading
import time
from typing import Any

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sage_common.health import Health, Level
from sage_common.params import ParamSpec
from sage_common.convert import latent_to_msg
from sage_common.ros import LATCHED_QOS, RELIABLE_QOS, DiagnosticsPublisher, declare_params
from sage_common.stamps import to_sec
from sage_common.vocabulary import Topic
from sage_encoders.puzzle import IrpConfig
from sage_interfaces.msg import AtpBudget, Latent, MetabolicState
from sage_interfaces.srv import EncoderInput
from std_msgs.msg import String

from sage_encoders.budget import AtpAccount, should_suspend
from sage_encoders.errors import EncoderError, InputError
from sage_encoders.live_models import PACKAGED, LiveModel, live_model
from sage_encoders.refine_worker import SALIENCE_FIRST, RefineWorker
from sage_encoders.runtime import fallback_note

# Budget: best effort subscription, so it matches the orchestrator whatever its reliability.
BUDGET_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT,
                        history=HistoryPolicy.KEEP_LAST)


class EncoderNodeBase(Node):
    """Base of the encoder shells; subclasses build `self.core` in `make_core`.

    With `follow_models` (a modality; vision and audio) the node follows the live model
    version on Topic.MODELS_LIVE (parameter models.follow_live): a new version is loaded and
    checked on a thread of its own (`core.prepare_model`) while inputs keep being encoded,
    then swapped in between two inputs (`core.swap_model`); the outcome comes back to the
    executor thread through a guard condition, which updates /diagnostics and the log.
    """

    def __init__(self, name: str, params: tuple[ParamSpec, ...],
                 validator: Callable[[Mapping[str, Any]], list[str]],
                 with_budget: bool = True, follow_models: str = '',
                 **node_kwargs: Any) -> None:
        super().__init__(name, **node_kwargs)
        self.health = Health()
        self.values = declare_params(self, params, validator, self._on_params)
        self.core = self.make_core(self.values)
        # Load the model before the subclass subscribes to inputs: a first input that waits
        # for the load lets the newest-only input queues drop what arrives meanwhile.
        self.guarded('model load', self.core.load)
        self.account = AtpAccount(str(self.values.get('plugin') or self.get_name()))
        self.suspended = False
        self.metabolic_state = ''
        self.seq = 0
        self.frame_id = ''  # header.frame_id of the input being encoded
        if with_budget:
            self.create_subscription(AtpBudget, Topic.BUDGET, self._on_budget, BUDGET_QOS)
        self.create_subscription(MetabolicState, Topic.METABOLIC_STATE, self._on_state,
                                 LATCHED_QOS)
        self.diagnostics = DiagnosticsPublisher(self, self.health,
                                                float(self.values['diagnostics_period']))
        self.follow_models = follow_models
        if follow_models:
            self._init_follow()
        self.report_model()

    def initial_publisher(self, modality: str) -> Callable[[Any], None] | None:
        """The sink the core hands each input's latent before refinement to: it publishes on
        /sage/<modality>/latent_initial (None when irp.publish_initial is off, read at start).

        SNARC scores that latent, so salience does not wait for the refinement steps; the
        refined latent (memory, orchestrator trust, viz) follows on /sage/<modality>/latent.
        """
        if not self.values['irp.publish_initial']:
            return None
        pub = self.create_publisher(Latent, Topic.latent_initial(modality), RELIABLE_QOS)
        self.health.count('published_initial', 0)

        def sink(rec: Any) -> None:
            pub.publish(latent_to_msg(rec, self.frame_id))
            self.health.count('published_initial')
        return sink

    def refine_worker(self, publish: Callable[[Any, str], None]) -> RefineWorker | None:
        """With irp.publish_initial (read at start): the thread that refines each input
        after its latent before refinement left, and hands `publish` (record, frame_id) for
        the refined latent. The executor thread only begins inputs (`core.begin...`), so the
        next input is scored without waiting for this one's refinement steps. None when
        refinement stays in the input's callback.
        """
        if not self.values['irp.publish_initial']:
            return None
        self.health.count('unrefined_queue_full', 0)
        self.health.values['refine_backlog'] = '0'

        def finish(item: tuple[Any, str], atp: float | None) -> tuple[Any, str]:
            return self.core.finish(item[0], atp, SALIENCE_FIRST.wait_idle), item[1]

        def done(out: tuple[Any, str]) -> None:
            publish(*out)
            worker = self.refiner
            if worker is not None:
                self.health.values['refine_backlog'] = str(worker.backlog())
                skipped = worker.unrefined - self.health.counters['unrefined_queue_full']
                if skipped:
                    self.health.count('unrefined_queue_full', skipped)

        def failed(err: Exception) -> None:
            self.report_error('refinement', err)

        return RefineWorker(finish, self.account.available, done, failed,
                            int(self.values['irp.queue']), f'{self.get_name()}_refine')

    def make_core(self, values: Mapping[str, Any]) -> Any:
        """Build the encoder core from resolved parameters."""
        raise NotImplementedError

    def log_line(self, text: str) -> None:
        """Log sink handed to the cores (provider fallbacks)."""
        self.get_logger().warning(text)

    def _on_params(self, values: dict[str, Any]) -> None:
        following = bool(self.values.get('models.follow_live'))
        self.values = values
        if self.follow_models and values['models.follow_live'] and not following:
            # Following again: catch up with the newest message (a failed version is retried).
            self._requested = self._live
            if self._live_msg is not None:
                self._follow(self._live_msg)
        refiner = getattr(self, 'refiner', None)
        if refiner is not None and 'irp.queue' in values:
            refiner.depth = int(values['irp.queue'])
        set_irp = getattr(self.core, 'set_irp', None)
        if callable(set_irp) and 'irp.eps' in values:
            set_irp(IrpConfig.from_params(values))
        set_training_input = getattr(self.core, 'set_training_input', None)
        if callable(set_training_input) and 'training_input.keep' in values:
            set_training_input(values)

    def serve_inputs(self, modality: str) -> None:
        """Answer EncoderInput requests from the core's ring of kept inputs (core.inputs).

        The service has a callback group of its own: under a multi-threaded executor (a
        composed process with launch.compose_threads > 1) it answers while an input is
        being encoded; the ring is thread safe. A single-threaded executor (the default)
        answers between two encodes.
        """
        for name in ('training_inputs_served', 'training_inputs_not_found'):
            # present from the start: /diagnostics shows 0, and no key appears later while
            # the diagnostics timer iterates the counters on another thread
            self.health.count(name, 0)
        self.create_service(EncoderInput, Topic.encoder_input(modality), self._on_input_request,
                            callback_group=MutuallyExclusiveCallbackGroup())

    def _on_input_request(self, req: EncoderInput.Request, resp: EncoderInput.Response
                          ) -> EncoderInput.Response:
        answer = self.core.inputs.lookup(to_sec(req.stamp), req.input_seq)
        resp.found = answer.found
        resp.message = answer.message
        resp.format = answer.format
        resp.data = answer.data
        resp.width, resp.height = answer.width, answer.height
        resp.sample_rate, resp.samples = answer.sample_rate, answer.samples
        self.health.count('training_inputs_served' if answer.found
                          else 'training_inputs_not_found')
        if not answer.found:
            self.health.values['training_input_last_miss'] = answer.message
        return resp

    def _on_budget(self, msg: AtpBudget) -> None:
        self.account.on_budget(msg.tick, ((a.plugin, a.atp) for a in msg.allocations))
        avail = self.account.available()
        self.health.values['atp_allocated'] = f'{avail:.2f}' if avail is not None else ''

    def _on_state(self, msg: MetabolicState) -> None:
        self.metabolic_state = msg.state
        suspend = should_suspend(msg.state, msg.memory_pressure,
                                 str(self.values['unload_states']),
                                 bool(self.values['unload_on_memory_red']))
        if suspend and not self.suspended:
            self.core.unload()
            self.get_logger().info(f'unloaded model ({msg.state}, memory {msg.memory_pressure})'
                                   f' in {self.core.model.unload_ms:.2f} ms')
        elif not suspend and self.suspended:
            self.get_logger().info(f'resuming ({msg.state}); model loads on next input')
        self.suspended = suspend
        self.health.values['metabolic_state'] = msg.state
        self.report_model()

    def accept(self) -> bool:
        """Count an input; False when it must be skipped (suspended)."""
        self.health.count('inputs')
        if self.suspended:
            self.health.count('skipped_suspended')
            return False
        return True

    def guarded(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run fn; on a domain error report it on /diagnostics, log, and return None."""
        try:
            return fn()
        except (InputError, EncoderError) as err:
            self.report_error(what, err)
        return None

    def report_error(self, what: str, err: Exception) -> None:
        """Count, report on /diagnostics and log (throttled) an input lost to `err`."""
        if isinstance(err, InputError):
            self.health.count('bad_input')
            self.health.problem(Level.ERROR, f'bad {what} skipped: {err}')
            self.get_logger().warning(f'bad {what} skipped: {err}', throttle_duration_sec=5.0)
            return
        text = (f'{what} not encoded: {err}' if isinstance(err, EncoderError)
                else f'{what} failed: {type(err).__name__}: {err}')
        self.health.count('encoder_errors')
        self.health.problem(Level.ERROR, text)
        self.get_logger().error(text, throttle_duration_sec=5.0)

    def report_model(self) -> None:
        """Model state for /diagnostics: loaded, load/unload times, providers."""
        m = self.core.model
        v = self.health.values
        v['loaded'] = str(m.loaded).lower()
        v['load_ms'] = f'{m.load_ms:.2f}'
        v['unload_ms'] = f'{m.unload_ms:.3f}'
        v['loads'] = str(m.loads)
        v['providers'] = ','.join(m.providers)
        v['providers_requested'] = str(self.values['providers'])
        # A GPU provider asked for but not live stays a WARN for as long as it lasts.
        note = (fallback_note(v['providers_requested'], list(m.providers))
                if m.loaded and self.values['runtime'] == 'onnx' else '')
        self.health.condition('provider_fallback', Level.WARN, note)
        v['precision'] = str(self.values['precision'])
        v['runtime'] = str(self.values['runtime'])
        v['suspended'] = str(self.suspended).lower()

    def after_encode(self, rec: Any) -> None:
        """Book-keeping after one published latent."""
        self.account.spend(rec.atp_spent)
        self.health.count('published')
        self.health.latency('encode', rec.encode_ms)
        self.health.values['last_iterations'] = str(rec.iterations)
        self.health.values['last_halt_reason'] = rec.halt_reason
        self.health.values['atp_spent_tick'] = f'{self.account.spent_tick:.2f}'
        self.report_model()

    # --- following the live model version (Topic.MODELS_LIVE) -----------------------------

    def _init_follow(self) -> None:
        self._start_dir = self.core.model.directory
        self._live = LiveModel(PACKAGED, self._start_dir)  # in use
        self._requested = self._live  # newest asked of the loader (a failed one is not retried)
        self._live_msg: str | None = None
        self._swap_lock = threading.Lock()  # guards _wanted, _loader and _done
        self._wanted: LiveModel | None = None  # next version the loader thread takes
        self._loader: threading.Thread | None = None
        self._done: list[tuple[LiveModel, float, str]] = []  # (version, load ms, error)
        self._swap_done = self.create_guard_condition(self._on_swap_done)
        for name in ('model_swaps', 'model_swap_failures'):
            self.health.count(name, 0)  # present from the start, like the other counters
        v = self.health.values
        v['model_version'] = PACKAGED
        v['model_path'] = str(self._start_dir)
        v['model_swap_ms'] = ''
        v['model_error'] = ''
        self.create_subscription(String, Topic.MODELS_LIVE, self._on_models_live, LATCHED_QOS)

    def _on_models_live(self, msg: String) -> None:
        self._live_msg = msg.data
        if self.values['models.follow_live']:
            self._follow(msg.data)

    def _follow(self, data: str) -> None:
        """Hand the version a MODELS_LIVE message names to the loader thread (if new)."""
        try:
            wanted = live_model(data, self.follow_models, self._start_dir)
        except EncoderError as err:
            self._swap_failed(None, str(err))
            return
        if wanted is None or wanted == self._requested:
            return
        self._requested = wanted
        self.get_logger().info(f'loading {self.follow_models} model {wanted.version} from '
                               f'{wanted.directory}')
        with self._swap_lock:
            self._wanted = wanted
            if self._loader is None:  # else the running loader takes it next
                self._loader = threading.Thread(target=self._load_versions, daemon=True,
                                                name=f'{self.get_name()}_model_swap')
                self._loader.start()

    def _load_versions(self) -> None:
        """Loader thread: load, check and swap in each wanted version, newest first."""
        _lower_this_threads_priority()  # the encoding thread keeps the cores while it loads
        while True:
            with self._swap_lock:
                wanted, self._wanted = self._wanted, None
                if wanted is None:
                    self._loader = None
                    return
            t0 = time.perf_counter()
            error = ''
            try:
                self.core.use_model(wanted.directory)
            except EncoderError as err:
                error = str(err)
            except Exception as err:  # noqa: BLE001 - a loader must not die silently
                error = f'unexpected {type(err).__name__}: {err}'
            with self._swap_lock:
                self._done.append((wanted, (time.perf_counter() - t0) * 1e3, error))
            try:
                self._swap_done.trigger()
            except Exception:  # noqa: BLE001 - the node is being destroyed
                pass

    def _on_swap_done(self) -> None:
        """Executor thread: report what the loader thread did."""
        with self._swap_lock:
            done, self._done = self._done, []
        for wanted, ms, error in done:
            if error:
                self._swap_failed(wanted, error)
                continue
            self._live = wanted
            v = self.health.values
            v['model_version'] = wanted.version
            v['model_path'] = str(wanted.directory)
            v['model_swap_ms'] = f'{ms:.1f}'
            v['model_error'] = ''
            self.health.count('model_swaps')
            self.get_logger().info(f'{self.follow_models} model {wanted.version} in use '
                                   f'({wanted.directory}; loaded and checked in {ms:.0f} ms)')
        self.report_model()

    def _swap_failed(self, wanted: LiveModel | None, error: str) -> None:
        what = (f'{self.follow_models} model {wanted.version} not swapped in'
                if wanted is not None else 'live models message ignored')
        text = f'{what}: {error}; still running {self._live.version}'
        self.health.count('model_swap_failures')
        self.health.problem(Level.ERROR, text)
        self.health.values['model_error'] = text
        self.get_logger().error(text)

    def close(self) -> None:
        """Stop refining and wait for a model load in progress (called before the node is
        destroyed)."""
        refiner = getattr(self, 'refiner', None)
        if refiner is not None:
            refiner.close()
        loader = getattr(self, '_loader', None)
        if loader is not None:
            loader.join(timeout=30.0)


LOADER_NICE = 19  # a swap may take longer; the inputs meanwhile are encoded on time


def _lower_this_threads_priority() -> None:
    """Give the calling thread the lowest CPU priority (Linux: a thread is a task of its own;
    elsewhere nothing is done)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOADER_NICE)
    except (AttributeError, OSError):
        pass
