using Orleans.Optim.Algorithms;
using Orleans.Optim.Engine;
using Orleans.Optim.Formats.Pt;
using Orleans.Optim.Grains;
using Orleans.Optim.Layout;
using Orleans.Optim.Python;
using Orleans.Optim.Schedulers;
using Orleans.Optim.StateDicts;
using Orleans.Optim.Tensors;
using Orleans.Optim.Wire;

namespace Orleans.Optim.Client;

/// <summary>
/// A worker's handle on a named optimizer held by the cluster, shaped like <c>torch.optim.Optimizer</c>: step with
/// this worker's gradients, read and set param group hyperparameters, take and load state dicts.
/// </summary>
/// <remarks>
/// Each data-parallel worker creates or attaches its own handle. A synchronous step completes when all
/// <c>world_size</c> workers pushed their gradients for it. Tensor data goes straight to the shard grains as raw
/// bytes, and the coordinator keeps only the structure and hyperparameters. Not thread-safe: one handle per worker.
/// </remarks>
public sealed class ClusterOptimizer
{
    private const int ConsistentCutAttempts = 100;
    private const int PinnedReadAttempts = 3;
    private static readonly TimeSpan s_consistentCutDelay = TimeSpan.FromMilliseconds(20);

    // An estimate of the state tensors per parameter (AMSGrad and centered RMSprop with momentum keep 3). It sizes
    // only the first read of a state dict, because a shard with more state bytes is read on in further chunks.
    private const int ExpectedStateTensors = 3;

    private readonly IGrainFactory _grains;
    private readonly ShardStateReads _stateReads;
    private OptimizerDescription _description;

    private ClusterOptimizer(IGrainFactory grains, OptimizerDescription description, long stepCount)
    {
        _grains = grains;
        _description = description;
        _stateReads = new ShardStateReads(grains, description.Name);
        Layout = description.ToLayout();
        Algorithm = OptimizerAlgorithms.Get(description.Spec.Algorithm);
        StepCount = stepCount;
    }

    /// <summary>The optimizer's name.</summary>
    public string Name => _description.Name;

    /// <summary>Parameters with their param IDs and groups, and the shard map, as of this handle's last request.</summary>
    public OptimizerLayout Layout { get; private set; }

    /// <summary>The algorithm.</summary>
    public OptimizerAlgorithm Algorithm { get; }

    /// <summary>
    /// Whether the last step of this handle was skipped on every shard because a reduced gradient was not finite
    /// (only with <see cref="OptimizerSpec.SkipNonFiniteSteps"/>); the parameters did not change.
    /// </summary>
    public bool LastStepSkipped { get; private set; }

    /// <summary>Number of synchronous steps applied, as this handle last saw it; the next step is one more.</summary>
    public long StepCount { get; private set; }

    /// <summary>Each group's hyperparameters as of this handle's last request, without <c>params</c>.</summary>
    public IReadOnlyList<IReadOnlyDictionary<string, object?>> ParamGroups =>
        _description.Groups.Select(g => (IReadOnlyDictionary<string, object?>)PythonBinary.DecodeOptions(g)).ToList();

    /// <summary>
    /// Creates the optimizer with its initial parameter values, or attaches to it when one with the same spec exists.
    /// </summary>
    /// <param name="grains">The cluster client's grain factory.</param>
    /// <param name="name">Optimizer name, such as <c>run-42</c>.</param>
    /// <param name="spec">Algorithm, hyperparameters, param groups and data-parallel settings.</param>
    /// <param name="initialValues">Initial values per parameter in param-ID order (over the groups, in order).</param>
    /// <param name="cancellationToken">Cancels waiting; requests already sent still complete.</param>
    /// <exception cref="ArgumentException">The initial values do not match the parameters.</exception>
    /// <exception cref="InvalidHyperparameterException">A hyperparameter fails torch's checks.</exception>
    /// <exception cref="OptimizerFaultException">The spec is invalid or the name is taken by another spec.</exception>
    public static async Task<ClusterOptimizer> CreateAsync(
        IGrainFactory grains,
        string name,
        OptimizerSpec spec,
        IReadOnlyList<float[]> initialValues,
        CancellationToken cancellationToken = default)
    {
        if (ShardKeys.Validate(name) is { } invalidName)
        {
            throw new ArgumentException(invalidName, nameof(name));
        }

        var description = await Translate(() => Coordinator(grains, name).Create(spec.ToData()));
        var layout = description.ToLayout();
        if (description.Status == OptimizerStatus.Ready)
        {
            var (_, max) = await Coordinator(grains, name).GetStepRange();
            return new ClusterOptimizer(grains, description, max);
        }

        CheckValues(layout, initialValues, nameof(initialValues));
        await Task.WhenAll(layout.Shards.Select(shard =>
            Shard(grains, name, shard.Index).SetValues(SliceBytes(initialValues[(int)shard.ParamId], shard))));
        cancellationToken.ThrowIfCancellationRequested();

        description = await Translate(() => Coordinator(grains, name).Activate());
        return new ClusterOptimizer(grains, description, 0);
    }

    /// <summary>Returns whether an optimizer with this name exists in the cluster (being created or ready).</summary>
    public static async Task<bool> ExistsAsync(IGrainFactory grains, string name)
    {
        try
        {
            await Coordinator(grains, name).Describe();
            return true;
        }
        catch (OptimizerFaultException e) when (e.Fault == OptimizerFault.NotFound)
        {
            return false;
        }
    }

    /// <summary>
    /// Attaches to an existing optimizer, waiting up to <paramref name="waitForReady"/> for its creation to finish.
    /// </summary>
    /// <exception cref="OptimizerFaultException">No such optimizer, or it did not become ready in time.</exception>
    public static async Task<ClusterOptimizer> AttachAsync(
        IGrainFactory grains,
        string name,
        TimeSpan? waitForReady = null,
        CancellationToken cancellationToken = default)
    {
        var deadline = DateTime.UtcNow + (waitForReady ?? TimeSpan.FromSeconds(30));
        while (true)
        {
            OptimizerDescription? description = null;
            try
            {
                description = await Coordinator(grains, name).Describe();
            }
            catch (OptimizerFaultException e) when (e.Fault == OptimizerFault.NotFound && DateTime.UtcNow < deadline)
            {
            }

            if (description?.Status == OptimizerStatus.Ready)
            {
                var (min, _) = await Coordinator(grains, name).GetStepRange();
                return new ClusterOptimizer(grains, description, min);
            }

            if (DateTime.UtcNow >= deadline)
            {
                throw new OptimizerFaultException(
                    OptimizerFault.NotReady,
                    $"Optimizer '{name}' did not become ready within {(waitForReady ?? TimeSpan.FromSeconds(30)).TotalSeconds:0.#} s: the creating worker has not sent all initial values.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50), cancellationToken);
        }
    }

    /// <summary>
    /// Pushes this worker's gradients for the next synchronous step and returns the new parameter values once every
    /// worker's gradients are in and the update is applied.
    /// </summary>
    /// <param name="rank">This worker's rank in <c>[0, world_size)</c>.</param>
    /// <param name="gradients">
    /// One gradient per parameter in param-ID order; <see langword="null"/> where the parameter has no gradient. They are
    /// sent from these arrays without a copy, so leave them unchanged until the returned task completes.
    /// </param>
    /// <param name="cancellationToken">
    /// Cancels waiting for the reply; the push itself is not withdrawn. The task then ends once every push has been
    /// written, so that the gradients may change again.
    /// </param>
    /// <returns>Every parameter's new values, in new arrays in param-ID order.</returns>
    /// <exception cref="ArgumentException">The gradients do not match the parameters; nothing was sent.</exception>
    /// <exception cref="OptimizerFaultException">The step was rejected or timed out; <see cref="StepCount"/> stays.</exception>
    public async Task<float[][]> StepAsync(int rank, IReadOnlyList<float[]?> gradients, CancellationToken cancellationToken = default)
    {
        await PrepareStepAsync(rank, gradients);

        // Every element is overwritten by a shard's reply before the arrays are returned.
        var result = Layout.Parameters.Select(p => GC.AllocateUninitializedArray<float>((int)p.NumElements)).ToArray();
        await PushStepAsync(rank, gradients, result, cancellationToken);
        return result;
    }

    /// <summary>
    /// Pushes this worker's gradients for the next synchronous step as
    /// <see cref="StepAsync(int, IReadOnlyList{float[]}, CancellationToken)"/> does, and writes the new parameter values
    /// into arrays the caller passes, so that a step allocates no arrays of its own.
    /// </summary>
    /// <param name="rank">This worker's rank in <c>[0, world_size)</c>.</param>
    /// <param name="gradients">
    /// One gradient per parameter in param-ID order; <see langword="null"/> where the parameter has no gradient. Leave
    /// them unchanged until the returned task completes.
    /// </param>
    /// <param name="values">
    /// One array per parameter in param-ID order, of the parameter's number of elements, which receives its new values.
    /// When the step fails or is cancelled, some elements may have new values and others old ones. No element is
    /// written after the returned task completes.
    /// </param>
    /// <param name="cancellationToken">Cancels waiting for the reply; the push itself is not withdrawn.</param>
    /// <exception cref="ArgumentException">The gradients or the value arrays do not match the parameters; nothing was sent.</exception>
    /// <exception cref="OptimizerFaultException">The step was rejected or timed out; <see cref="StepCount"/> stays.</exception>
    public async Task StepAsync(int rank, IReadOnlyList<float[]?> gradients, IReadOnlyList<float[]> values, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(values);
        await PrepareStepAsync(rank, gradients);
        CheckValues(Layout, values, nameof(values));
        for (int i = 0; i < values.Count; i++)
        {
            if (values[i] is null)
            {
                throw new ArgumentException($"The value array for param {i} is null: pass one array per parameter to receive its new values.", nameof(values));
            }
        }

        await PushStepAsync(rank, gradients, values, cancellationToken);
    }

    private async Task PrepareStepAsync(int rank, IReadOnlyList<float[]?> gradients)
    {
        if (rank < 0 || rank >= Layout.WorldSize)
        {
            throw new ArgumentOutOfRangeException(nameof(rank), rank, $"Invalid rank {rank}: expected 0 <= rank < world_size = {Layout.WorldSize}.");
        }

        if (gradients.Count > Layout.Parameters.Count)
        {
            // Another worker may have added a param group since this handle last looked.
            await RefreshAsync();
        }

        CheckValues(Layout, gradients, nameof(gradients));
    }

    private async Task PushStepAsync(int rank, IReadOnlyList<float[]?> gradients, IReadOnlyList<float[]> values, CancellationToken cancellationToken)
    {
        long step = StepCount + 1;
        bool anySkipped = false;
        var shards = Layout.Shards;
        var pushes = new (FloatPayload Gradient, Task Call, ReplyDestination Destination)[shards.Count];
        var copies = new ReplyCopyGate();

        // Each gradient slice is sent straight from the caller's array. Each reply's values are read straight into the
        // parameter's values array when the reply comes over the network, and copied there otherwise.
        async Task PushAsync(int index)
        {
            var shard = shards[index];
            float[]? gradient = gradients[(int)shard.ParamId];
            using var destination = new ReplyDestination(values[(int)shard.ParamId], (int)shard.Offset, shard.Length);
            var payload = gradient is null
                ? FloatPayload.Empty(destination.Token)
                : FloatPayload.Borrow(gradient, (int)shard.Offset, shard.Length, destination.Token);
            var call = Shard(shard.Index).Step(step, rank, payload);
            pushes[index] = (payload, call, destination);
            var reply = await call;
            using var received = reply.Values;
            if (!received.WasDeliveredTo(destination) && copies.TryEnter())
            {
                try
                {
                    received.CopyTo(values[(int)shard.ParamId].AsSpan((int)shard.Offset, shard.Length));
                }
                finally
                {
                    copies.Exit();
                }
            }

            if (reply.Skipped)
            {
                anySkipped = true;
            }
        }

        var all = Task.WhenAll(Enumerable.Range(0, shards.Count).Select(PushAsync));
        try
        {
            await all.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (!all.IsCompleted)
        {
            // No reply is copied from now on, and the caller may change the gradients once each push is written or its
            // call has ended.
            copies.Close();
            foreach (var push in pushes)
            {
                push.Destination?.Dispose();
            }

            await Task.WhenAll(pushes.Where(push => push.Call is not null).Select(push => Task.WhenAny(push.Gradient.Released, push.Call)));
            throw;
        }

        StepCount = step;
        LastStepSkipped = anySkipped;
    }

    /// <summary>
    /// Adds a param group with new parameters, as torch's <c>add_param_group</c>: its parameters take the next param
    /// IDs and its missing hyperparameters come from the defaults. Call it between steps; the other workers pick the
    /// group up with <see cref="RefreshAsync"/>, or at their first step with gradients for it.
    /// </summary>
    /// <param name="group">The group's own hyperparameters and its parameters.</param>
    /// <param name="initialValues">Initial values of the group's parameters, in order.</param>
    /// <exception cref="ArgumentException">The values do not match the parameters; nothing changes.</exception>
    /// <exception cref="InvalidHyperparameterException">A hyperparameter fails torch's checks; nothing changes.</exception>
    /// <exception cref="OptimizerFaultException">A step is in progress, or a parameter name is taken; nothing changes.</exception>
    public async Task AddParamGroupAsync(ParamGroupSpec group, IReadOnlyList<float[]> initialValues)
    {
        if (initialValues.Count != group.Parameters.Count)
        {
            throw new ArgumentException($"Expected initial values for the group's {group.Parameters.Count} parameters, found {initialValues.Count}.", nameof(initialValues));
        }

        for (int i = 0; i < group.Parameters.Count; i++)
        {
            if (initialValues[i].LongLength != group.Parameters[i].NumElements)
            {
                throw new ArgumentException(
                    $"Initial values of the new group's parameter {i} have {initialValues[i].Length} elements; its shape {Tensor.FormatShape(group.Parameters[i].Shape)} needs {group.Parameters[i].NumElements}.",
                    nameof(initialValues));
            }
        }

        var data = new ParamGroupSpecData(
            PythonBinary.EncodeOptions(group.Options),
            group.Parameters.Select(p => new ParameterSpecData(p.Name, p.Shape)).ToArray());
        var description = await Translate(() => CoordinatorGrain.AddParamGroup(data));
        var layout = description.ToLayout();
        int groupIndex = layout.GroupCount - 1;
        var newParameters = layout.Parameters.Where(p => p.GroupIndex == groupIndex).ToList();
        await Task.WhenAll(layout.Shards.Where(s => layout.Parameters[(int)s.ParamId].GroupIndex == groupIndex).Select(shard =>
        {
            int position = newParameters.FindIndex(p => p.Id == shard.ParamId);
            return Shard(shard.Index).SetValues(SliceBytes(initialValues[position], shard));
        }));

        _description = description;
        Layout = layout;
    }

    /// <summary>Reloads the layout and hyperparameters from the coordinator, for example after another worker added a param group.</summary>
    public async Task RefreshAsync()
    {
        _description = await Translate(() => CoordinatorGrain.Describe());
        Layout = _description.ToLayout();
    }

    /// <summary>Returns every parameter's current values, in param-ID order.</summary>
    public async Task<float[][]> GetParametersAsync()
    {
        var snapshots = await ConsistentSnapshotsAsync();
        return Assemble(snapshots.Select(s => s.Values).ToArray());
    }

    /// <summary>Replaces every parameter's values, in param-ID order; call it between steps.</summary>
    /// <exception cref="ArgumentException">The values do not match the parameters; nothing changes.</exception>
    public async Task SetParametersAsync(IReadOnlyList<float[]> values)
    {
        CheckValues(Layout, values, nameof(values));
        await Task.WhenAll(Layout.Shards.Select(shard => Shard(shard.Index).SetValues(SliceBytes(values[(int)shard.ParamId], shard))));
    }

    /// <summary>Returns the current param groups' hyperparameters, without <c>params</c>.</summary>
    public async Task<IReadOnlyList<IReadOnlyDictionary<string, object?>>> GetParamGroupsAsync()
    {
        await RefreshAsync();
        return ParamGroups;
    }

    /// <summary>Sets <c>param_groups[group][key] = value</c>; it takes effect from the next step on every shard of the group.</summary>
    /// <param name="group">Group index.</param>
    /// <param name="key">Hyperparameter name, such as <c>lr</c>.</param>
    /// <param name="value">Python-typed value (see <see cref="PythonValues"/>): a double for a float, a long for an int, an object array for a tuple.</param>
    /// <exception cref="InvalidHyperparameterException">The value fails torch's checks; nothing changes.</exception>
    public async Task SetHyperparameterAsync(int group, string key, object? value)
    {
        _description = await Translate(() => CoordinatorGrain.SetHyperparameter(group, key, PythonBinary.Encode(value)));
    }

    /// <summary>
    /// Returns torch's <c>optimizer.state_dict()</c>, gathered from every shard at one step.
    /// </summary>
    /// <exception cref="OptimizerFaultException">The shards kept moving between steps and no consistent cut was found.</exception>
    public async Task<OptimizerStateDict> StateDictAsync()
    {
        for (int attempt = 1; ; attempt++)
        {
            await RefreshAsync();
            var firstChunks = await ConsistentStateReadsAsync(ShardChunkStream.ChunkBytes);
            try
            {
                var tensorBytes = await Task.WhenAll(Layout.Shards.Select(shard => ReadTensorBytesAsync(shard, firstChunks[shard.Index])));
                return BuildStateDict(firstChunks, tensorBytes);
            }
            catch (OptimizerFaultException e) when (e.Fault == OptimizerFault.Inconsistent && attempt < PinnedReadAttempts)
            {
                // A step was applied between the first and a later chunk of some shard: start again at the new step.
            }
        }
    }

    /// <summary>
    /// Loads a state dict as torch's <c>load_state_dict</c>: checks all of it first, then replaces the hyperparameters
    /// and state on every shard. Parameter values are not part of an optimizer state dict and stay.
    /// </summary>
    /// <exception cref="StateDictException">The state dict does not fit; nothing changes.</exception>
    public async Task LoadStateDictAsync(OptimizerStateDict stateDict)
    {
        await RefreshAsync();
        var defaults = PythonBinary.DecodeOptions(_description.Defaults);
        var plan = LoadPlan.Create(Algorithm, Layout, defaults, stateDict);

        var loadId = Guid.NewGuid();
        try
        {
            await Task.WhenAll(Layout.Shards.Select(shard =>
            {
                var key = plan.OrderKeyOf(shard.ParamId);
                return Shard(shard.Index).StageLoad(loadId, new ShardLoad(SliceStateBinary.Encode(plan.SliceFor(shard)), key.Step, key.Position));
            }));
        }
        catch
        {
            await Task.WhenAll(Layout.Shards.Select(shard => Shard(shard.Index).AbortLoad(loadId)));
            throw;
        }

        _description = await Translate(() => CoordinatorGrain.CommitLoad(loadId, plan.Groups.Select(PythonBinary.EncodeOptions).ToArray()));
    }

    /// <summary>
    /// Writes <see cref="StateDictAsync"/> as a <c>.pt</c> file that <c>torch.load</c> and <c>optimizer.load_state_dict</c>
    /// accept, streaming each state tensor from its shards into the file in ranges of at most 64 KiB, so that this
    /// process keeps a bounded window of the state (two segments of at most 8 MiB), never all of it. The file is the
    /// same, byte for byte, as writing the gathered state dict.
    /// </summary>
    /// <remarks>
    /// Every shard is read at one step: the headers are read until all shards agree on the step, and every chunk
    /// read fails when its shard has moved on. The export then starts again, up to three times in all. The file is
    /// written through a temporary file, so a failed export leaves any existing file unchanged.
    /// </remarks>
    /// <param name="path">The file to write.</param>
    /// <param name="flushToDisk">
    /// Whether to flush the file to the disk before it replaces <paramref name="path"/>, as
    /// <see cref="PtWriterOptions.FlushToDisk"/> describes; <c>torch.save</c> does not.
    /// </param>
    /// <exception cref="OptimizerFaultException">Steps kept being applied during the export; export between steps.</exception>
    public async Task SaveAsync(string path, bool flushToDisk = true)
    {
        var options = new PtWriterOptions { FlushToDisk = flushToDisk };
        for (int attempt = 1; ; attempt++)
        {
            await RefreshAsync();
            var headers = await ConsistentStateReadsAsync(0);
            long step = headers[0].Step;
            using var export = new StreamedStateExport(Layout, ParamGroups, headers, requests => _stateReads.ReadAsync(step, requests));
            try
            {
                // The writer's tensor callbacks wait for the shards' replies, so the write runs on a pool thread.
                await Task.Run(() => PtWriter.WriteFile(path, export.Tree, options));
                return;
            }
            catch (OptimizerFaultException e) when (e.Fault == OptimizerFault.Inconsistent)
            {
                if (attempt == PinnedReadAttempts)
                {
                    throw new OptimizerFaultException(
                        OptimizerFault.Inconsistent,
                        $"Optimizer '{Name}': steps were applied during each of {PinnedReadAttempts} attempts to export its state at one step ({e.Message}). " +
                        "Export between steps, for example from a worker right after its step returns.",
                        e);
                }
            }
        }
    }

    /// <summary>
    /// Loads an optimizer <c>.pt</c> file written by <c>torch.save(optimizer.state_dict())</c> or by <see cref="SaveAsync"/>.
    /// The file is read as data: only the globals an optimizer state dict needs are allowed.
    /// </summary>
    /// <exception cref="PtFormatException">The file is not a valid <c>.pt</c> or references a forbidden global; nothing changes.</exception>
    /// <exception cref="StateDictException">The state dict does not fit this optimizer; nothing changes.</exception>
    public Task LoadAsync(string path) => LoadStateDictAsync(StateDictFiles.ReadOptimizer(path));

    /// <summary>
    /// Writes the current parameter values as a model state dict <c>.pt</c> (name to tensor, as <c>model.state_dict()</c>).
    /// </summary>
    /// <exception cref="InvalidOperationException">A parameter has no name.</exception>
    public async Task SaveParametersAsync(string path)
    {
        var unnamed = Layout.Parameters.FirstOrDefault(p => p.Name is null);
        if (unnamed is not null)
        {
            throw new InvalidOperationException(
                $"Param {unnamed.Id} has no name; a model state dict needs a name for every parameter. Name the parameters when creating the optimizer.");
        }

        var values = await GetParametersAsync();
        StateDictFiles.WriteModel(path, Layout.Parameters.Select(p => (p.Name!, p.Shape, values[(int)p.Id])).ToList());
    }

    /// <summary>
    /// Attaches a learning-rate scheduler that the coordinator runs, as torch's <c>Scheduler(optimizer, ...)</c>: it
    /// adds <c>initial_lr</c> to every group and sets the first <c>lr</c>. <see langword="null"/> detaches it.
    /// </summary>
    /// <exception cref="OptimizerFaultException">The scheduler or an argument is invalid; nothing changes.</exception>
    public async Task SetSchedulerAsync(SchedulerSpec? spec)
    {
        _description = await Translate(() => CoordinatorGrain.SetScheduler(spec is null ? null : PythonBinary.Encode(spec.ToPython())));
    }

    /// <summary>
    /// Runs the scheduler's <c>step()</c>; the new learning rates take effect from the next optimizer step on every
    /// shard. Call it from one worker, between steps, as a torch loop calls <c>scheduler.step()</c>.
    /// </summary>
    /// <returns>Each group's learning rate after the step.</returns>
    public async Task<IReadOnlyList<object?>> SchedulerStepAsync()
    {
        _description = await Translate(() => CoordinatorGrain.SchedulerStep());
        return ParamGroups.Select(g => g["lr"]).ToList();
    }

    /// <summary>Returns the attached scheduler's spec, or <see langword="null"/> without one.</summary>
    public async Task<SchedulerSpec?> GetSchedulerAsync()
    {
        var (spec, _) = await Translate(() => CoordinatorGrain.GetScheduler());
        return spec is null ? null : SchedulerSpec.FromPython(PythonBinary.Decode(spec));
    }

    /// <summary>Returns the attached scheduler's torch state dict (<c>scheduler.state_dict()</c>).</summary>
    /// <exception cref="OptimizerFaultException">No scheduler is attached.</exception>
    public async Task<OrderedDictionary<object, object?>> SchedulerStateDictAsync()
    {
        var (spec, state) = await Translate(() => CoordinatorGrain.GetScheduler());
        if (spec is null || state is null)
        {
            throw new OptimizerFaultException(OptimizerFault.InvalidArgument, $"Optimizer '{Name}' has no learning-rate scheduler; attach one first.");
        }

        return (OrderedDictionary<object, object?>)PythonBinary.Decode(state)!;
    }

    /// <summary>Loads a torch scheduler state dict into the attached scheduler, as <c>scheduler.load_state_dict</c>.</summary>
    /// <exception cref="StateDictException">The state dict does not fit the scheduler; nothing changes.</exception>
    public async Task LoadSchedulerStateDictAsync(OrderedDictionary<object, object?> stateDict)
    {
        await Translate(async () =>
        {
            await CoordinatorGrain.LoadSchedulerState(PythonBinary.Encode(stateDict));
            return true;
        });
    }

    /// <summary>Writes the scheduler's state dict as a <c>.pt</c> file that torch's <c>scheduler.load_state_dict(torch.load(...))</c> accepts.</summary>
    public async Task SaveSchedulerAsync(string path) => PtWriter.WriteFile(path, await SchedulerStateDictAsync());

    /// <summary>Loads a scheduler <c>.pt</c> file written by <c>torch.save(scheduler.state_dict())</c> or <see cref="SaveSchedulerAsync"/>.</summary>
    public Task LoadSchedulerAsync(string path) => LoadSchedulerStateDictAsync(PtReader.ReadFile(path));

    /// <summary>
    /// Takes a sharded checkpoint at the current step: every shard writes its slice in parallel and the coordinator
    /// writes the manifest last. Call it between steps, from one worker.
    /// </summary>
    public Task<CheckpointInfo> CheckpointAsync() => Translate(() => CoordinatorGrain.Checkpoint());

    /// <summary>Lists the complete sharded checkpoints, oldest first.</summary>
    public Task<CheckpointInfo[]> ListCheckpointsAsync() => Translate(() => CoordinatorGrain.ListCheckpoints());

    /// <summary>Deletes a sharded checkpoint.</summary>
    public Task DeleteCheckpointAsync(string checkpoint) => Translate(async () =>
    {
        await CoordinatorGrain.DeleteCheckpoint(checkpoint);
        return true;
    });

    /// <summary>Restores the optimizer from one of its sharded checkpoints, in place, and continues from its step.</summary>
    public async Task<long> RestoreCheckpointAsync(string checkpoint)
    {
        StepCount = await Translate(() => CoordinatorGrain.RestoreCheckpoint(checkpoint));
        await RefreshAsync();
        return StepCount;
    }

    /// <summary>
    /// Checks the optimizer after a failure and, when a lost silo left shards with older or no state, rolls it back
    /// to the newest complete checkpoint. Every worker calls it before continuing; the first call does the work.
    /// </summary>
    /// <returns>The step the optimizer is at; the worker continues with the next one, from <see cref="GetParametersAsync"/>'s values.</returns>
    public async Task<long> RecoverAsync()
    {
        StepCount = await Translate(() => CoordinatorGrain.Recover());
        await RefreshAsync();
        return StepCount;
    }

    /// <summary>
    /// Creates a new optimizer from another optimizer's sharded checkpoint, optionally with another shard size; it
    /// can run on a cluster with another number of silos.
    /// </summary>
    public static async Task<ClusterOptimizer> CreateFromCheckpointAsync(
        IGrainFactory grains, string name, string sourceOptimizer, string checkpoint, int? maxShardElements = null)
    {
        if (ShardKeys.Validate(name) is { } invalidName)
        {
            throw new ArgumentException(invalidName, nameof(name));
        }

        var description = await Translate(() => Coordinator(grains, name).CreateFromCheckpoint(sourceOptimizer, checkpoint, maxShardElements));
        var (min, _) = await Coordinator(grains, name).GetStepRange();
        return new ClusterOptimizer(grains, description, min);
    }

    /// <summary>
    /// Moves shards so that every active silo holds an even share; the coordinator also does this by itself within
    /// seconds of a silo joining or leaving. Shards keep their exact state as they move.
    /// </summary>
    public Task<RebalanceResult> RebalanceAsync() => Translate(() => CoordinatorGrain.Rebalance());

    /// <summary>Returns where each shard lives: shard index to the silo's identity, for diagnostics and tests.</summary>
    public async Task<IReadOnlyList<ShardStatus>> GetShardStatusesAsync() =>
        await Task.WhenAll(Layout.Shards.Select(shard => Shard(shard.Index).GetStatus()));

    private IOptimizerGrain CoordinatorGrain => Coordinator(_grains, Name);

    private Task<ShardSnapshot[]> ConsistentSnapshotsAsync() =>
        ConsistentCutAsync(() => Task.WhenAll(Layout.Shards.Select(shard => Shard(shard.Index).Snapshot())), snapshot => snapshot.Step);

    /// <summary>
    /// Reads <paramref name="count"/> bytes of every shard's state tensors with the state's header, repeating until
    /// every reply comes from one step.
    /// </summary>
    private Task<ShardStateChunk[]> ConsistentStateReadsAsync(int count) =>
        ConsistentCutAsync(
            // A first read through this handle calls each shard on its own; later ones batch the shards of each silo.
            () => _stateReads.ReadAsync(
                ShardStateChunk.AnyStep,
                [.. Layout.Shards.Select(shard => new ChunkRequest(shard.Index, 0, Math.Min(count, (long)shard.Length * sizeof(float) * ExpectedStateTensors)))]),
            chunk => chunk.Step);

    /// <summary>Reads every shard with <paramref name="read"/>, repeating until every reply comes from one step.</summary>
    /// <exception cref="OptimizerFaultException">The shards were at different steps in every attempt.</exception>
    private async Task<T[]> ConsistentCutAsync<T>(Func<Task<T[]>> read, Func<T, long> stepOf)
    {
        for (int attempt = 1; ; attempt++)
        {
            var replies = await read();
            long min = replies.Min(stepOf);
            long max = replies.Max(stepOf);
            if (min == max)
            {
                return replies;
            }

            if (attempt == ConsistentCutAttempts)
            {
                throw new OptimizerFaultException(
                    OptimizerFault.Inconsistent,
                    $"Optimizer '{Name}': shards stayed at different steps ({min} to {max}) over {ConsistentCutAttempts} attempts. " +
                    "Take the state dict between steps, for example from a worker right after its step returns.");
            }

            await Task.Delay(s_consistentCutDelay);
        }
    }

    /// <summary>Returns all of a shard's state tensor bytes: <paramref name="first"/>'s, and the rest read at its step.</summary>
    private async Task<byte[]> ReadTensorBytesAsync(ShardInfo shard, ShardStateChunk first)
    {
        if (first.TotalBytes == first.Data.Length)
        {
            return first.Data;
        }

        var data = new byte[first.TotalBytes];
        first.Data.CopyTo(data, 0);
        for (long offset = first.Data.Length; offset < data.Length;)
        {
            int count = (int)Math.Min(ShardChunkStream.ChunkBytes, data.Length - offset);
            var chunk = await Shard(shard.Index).ReadState(first.Step, offset, count);
            if (chunk.Data.Length != count)
            {
                throw new OptimizerFaultException(
                    OptimizerFault.Inconsistent,
                    $"Shard {shard.Index} returned {chunk.Data.Length} bytes of its state at offset {offset}, not {count}; its state changed during the read.");
            }

            chunk.Data.CopyTo(data, offset);
            offset += count;
        }

        return data;
    }

    /// <summary>Joins the shards' tensor bytes into torch's state dict, copying each byte once.</summary>
    private OptimizerStateDict BuildStateDict(IReadOnlyList<ShardStateChunk> headers, IReadOnlyList<byte[]> tensorBytes)
    {
        var state = new OrderedDictionary<long, OrderedDictionary<string, object?>>();
        foreach (var (parameter, shards, sliceState) in ShardStateHeaders.StatesInOrder(Layout, headers))
        {
            var entries = new OrderedDictionary<string, object?>();
            int tensorEntry = 0;
            foreach (var entry in sliceState.Entries)
            {
                if (entry.Kind != StateValueKind.ParamTensor)
                {
                    entries[entry.Name] = StateDictAssembler.ScalarValue(entry);
                    continue;
                }

                // Entry k of a shard's tensor bytes starts at k times the slice's byte length.
                var data = new byte[checked(parameter.NumElements * sizeof(float))];
                foreach (var shard in shards)
                {
                    int sliceBytes = checked(shard.Length * sizeof(float));
                    tensorBytes[shard.Index].AsSpan(checked(tensorEntry * sliceBytes), sliceBytes).CopyTo(data.AsSpan(checked((int)(shard.Offset * sizeof(float)))));
                }

                entries[entry.Name] = new Tensor(DType.Float32, parameter.Shape, data);
                tensorEntry++;
            }

            state[parameter.Id] = entries;
        }

        return new OptimizerStateDict(state, StateDictAssembler.BuildGroups(Layout, ParamGroups));
    }

    private float[][] Assemble(IReadOnlyList<byte[]> shardValues)
    {
        var result = Layout.Parameters.Select(p => new float[p.NumElements]).ToArray();
        foreach (var shard in Layout.Shards)
        {
            var values = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(shardValues[shard.Index].AsSpan());
            values.CopyTo(result[(int)shard.ParamId].AsSpan((int)shard.Offset, shard.Length));
        }

        return result;
    }

    private IShardGrain Shard(int index) => Shard(_grains, Name, index);

    private static IShardGrain Shard(IGrainFactory grains, string name, int index) => grains.GetGrain<IShardGrain>(ShardKeys.For(name, index));

    private static IOptimizerGrain Coordinator(IGrainFactory grains, string name) => grains.GetGrain<IOptimizerGrain>(name);

    private static byte[] SliceBytes(float[] values, ShardInfo shard) => FloatBytes.ToBytes(values.AsSpan((int)shard.Offset, shard.Length));

    private static void CheckValues(OptimizerLayout layout, IReadOnlyList<float[]?> values, string argumentName)
    {
        if (values.Count != layout.Parameters.Count)
        {
            throw new ArgumentException($"Expected {layout.Parameters.Count} tensors (one per parameter, in param-ID order), found {values.Count}.", argumentName);
        }

        foreach (var parameter in layout.Parameters)
        {
            float[]? tensor = values[(int)parameter.Id];
            if (tensor is not null && tensor.LongLength != parameter.NumElements)
            {
                string name = parameter.Name is null ? string.Empty : $" ('{parameter.Name}')";
                throw new ArgumentException(
                    $"Tensor for param {parameter.Id}{name} has {tensor.Length} elements; its shape {Tensor.FormatShape(parameter.Shape)} needs {parameter.NumElements}.",
                    argumentName);
            }
        }
    }

    private static async Task<T> Translate<T>(Func<Task<T>> request)
    {
        try
        {
            return await request();
        }
        catch (OptimizerFaultException e) when (e.Fault == OptimizerFault.InvalidHyperparameter)
        {
            throw new InvalidHyperparameterException(e.Message, e.Path ?? string.Empty);
        }
        catch (OptimizerFaultException e) when (e.Fault == OptimizerFault.StateDictMismatch)
        {
            throw new StateDictException(e.Message, e);
        }
    }

    /// <summary>Lets replies be copied into the caller's arrays until the step is cancelled, and no longer after that.</summary>
    private sealed class ReplyCopyGate
    {
        private int _copying;
        private int _closed;

        /// <summary>Returns whether a reply may be copied now; when it returns true, call <see cref="Exit"/> after the copy.</summary>
        public bool TryEnter()
        {
            Interlocked.Increment(ref _copying);
            if (Volatile.Read(ref _closed) != 0)
            {
                Interlocked.Decrement(ref _copying);
                return false;
            }

            return true;
        }

        public void Exit() => Interlocked.Decrement(ref _copying);

        /// <summary>Refuses further copies and returns once no copy is running.</summary>
        public void Close()
        {
            Interlocked.Exchange(ref _closed, 1);
            var wait = default(SpinWait);
            while (Volatile.Read(ref _copying) != 0)
            {
                wait.SpinOnce();
            }
        }
    }
}
