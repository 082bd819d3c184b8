using Akka.Actor;
using Akka.Event;
using Training.Shared.Messages;
using Training.Shared.Teaching;
using Training.Shared.Training;

namespace Training.Worker.Teaching;

/// <summary>
/// The teacher of one distillation trial on this (teacher) worker: loads the frozen model on a TorchSharp thread, serves
/// its scores on a framed socket stream (never through Akka) and tells the coordinator where. Student ranks connect to
/// that stream directly; this actor only starts and stops it.
/// </summary>
public sealed class TeacherHost : ReceiveActor
{
    private sealed record Loaded(TeacherModel Model, TeacherStreamServer Server);
    private sealed record LoadFailed(string Error);

    private readonly AssignTeacher _assignment;
    private readonly IActorRef _coordinator;
    private readonly string _workerId;
    private readonly string _host;
    private readonly string _device;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private TeacherModel? _model;
    private TeacherStreamServer? _server;
    private bool _stopped;

    public static Props Props(AssignTeacher assignment, IActorRef coordinator, string workerId, string host, string device) =>
        Akka.Actor.Props.Create(() => new TeacherHost(assignment, coordinator, workerId, host, device));

    public TeacherHost(AssignTeacher assignment, IActorRef coordinator, string workerId, string host, string device)
    {
        _assignment = assignment;
        _coordinator = coordinator;
        _workerId = workerId;
        _host = host;
        _device = device;
        Receive<Loaded>(loaded =>
        {
            if (_stopped)
            {
                loaded.Server.Dispose();
                loaded.Model.Dispose();
                return;
            }
            (_model, _server) = (loaded.Model, loaded.Server);
            var endpoint = loaded.Server.Endpoint;
            Console.WriteLine($"worker {_workerId}: teacher of trial {_assignment.TrialId} serves at {endpoint} ({loaded.Model.Description})");
            _coordinator.Tell(new TeacherListening(_assignment.TrialId, _workerId, endpoint.Address.ToString(), endpoint.Port, loaded.Model.Description));
        });
        Receive<LoadFailed>(failed =>
        {
            _log.Error("teacher of trial {0}: {1}", _assignment.TrialId, failed.Error);
            _coordinator.Tell(new TeacherFailed(_assignment.TrialId, _workerId, failed.Error));
            Context.Stop(Self);
        });
    }

    protected override void PreStart()
    {
        var self = Self;
        var a = _assignment;
        // A trial asks for "cuda"; the worker knows which GPU it owns.
        var device = a.Device.StartsWith("cuda", StringComparison.Ordinal) && _device.StartsWith("cuda", StringComparison.Ordinal) ? _device : a.Device;
        var host = _host;
        TorchThread.Run($"teacher-{a.TrialId}", () =>
        {
            TorchSharp.torch.set_num_threads(a.Threads);
            TeacherModel? model = null;
            try
            {
                model = TeacherModel.Load(a.Teacher, Path.GetDirectoryName(a.RunDirectory), Trainer.ParseDevice(device), a.Tokenizer);
                var server = TeacherStreamServer.Start(host, 0, model, message => Console.WriteLine($"teacher {a.TrialId}: {message}"));
                self.Tell(new Loaded(model, server));
            }
            catch (Exception e)
            {
                model?.Dispose();
                self.Tell(new LoadFailed($"{e.GetType().Name}: {e.Message}"));
            }
            return 0;
        });
    }

    protected override void PostStop()
    {
        _stopped = true;
        _server?.Dispose();
        _model?.Dispose();
    }
}
