using System.Numerics.Tensors;

namespace Orleans.Optim.Cli.Training;

/// <summary>
/// A multilayer perceptron with one hidden layer, the equivalent of PyTorch's
/// <c>nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))</c> trained with <c>F.cross_entropy</c>
/// (softmax cross-entropy, mean over the samples).
/// </summary>
/// <remarks>
/// <para>
/// An instance stores only the layer sizes. The caller passes the parameter values to every call as float32
/// row-major arrays in the order of <see cref="Parameters"/>, the order and shapes of the torch model's
/// <c>state_dict()</c>. Inputs are [samples, <see cref="InputSize"/>] row-major.
/// </para>
/// <para>
/// Thread safety: every call allocates its own buffers and the class has no mutable state, so workers can call one
/// instance concurrently. Each sum runs in a fixed order, so equal arguments give bit-identical results.
/// NOTE: TensorPrimitives picks its SIMD width from the CPU, so machines with different vector units may round
/// <c>Dot</c>, <c>Sum</c> and <c>Exp</c> differently in the last bits.
/// </para>
/// </remarks>
public sealed class Mlp
{
    /// <summary>Default number of hidden units.</summary>
    public const int DefaultHiddenSize = 32;

    private const int HiddenWeightIndex = 0;
    private const int HiddenBiasIndex = 1;
    private const int OutputWeightIndex = 2;
    private const int OutputBiasIndex = 3;

    // Keeps the initialisation unrelated to a data shuffle that was given the same seed.
    private const ulong InitStream = 0x494E_4954_0000_0003;

    private readonly ParameterDescriptor[] _parameters;

    /// <summary>Creates the model description with the given layer sizes.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive.</exception>
    public Mlp(int hiddenSize = DefaultHiddenSize, int inputSize = DigitsDataset.FeatureCount, int classCount = DigitsDataset.ClassCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(hiddenSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(inputSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(classCount);

        HiddenSize = hiddenSize;
        InputSize = inputSize;
        ClassCount = classCount;

        // Index 1 of the Sequential is the ReLU, which has no parameters, so the second Linear layer is "2".
        _parameters =
        [
            new ParameterDescriptor("0.weight", [hiddenSize, inputSize]),
            new ParameterDescriptor("0.bias", [hiddenSize]),
            new ParameterDescriptor("2.weight", [classCount, hiddenSize]),
            new ParameterDescriptor("2.bias", [classCount]),
        ];
    }

    /// <summary>Number of hidden units.</summary>
    public int HiddenSize { get; }

    /// <summary>Number of inputs per sample.</summary>
    public int InputSize { get; }

    /// <summary>Number of classes, the size of the output layer.</summary>
    public int ClassCount { get; }

    /// <summary>Names and shapes of the parameters in the order every method expects the values.</summary>
    public IReadOnlyList<ParameterDescriptor> Parameters => _parameters;

    /// <summary>
    /// Creates parameter values from <paramref name="seed"/>. As in <c>nn.Linear.reset_parameters</c> of torch 1.13,
    /// every weight and bias of a layer is uniform within 1/sqrt(fan_in), but the random numbers are not torch's.
    /// </summary>
    /// <returns>One new array per parameter, in the order of <see cref="Parameters"/>.</returns>
    public float[][] InitializeParameters(long seed)
    {
        var random = SplitMix64.ForStream(seed, InitStream, 0);
        var values = new float[_parameters.Length][];
        for (int i = 0; i < _parameters.Length; i++)
        {
            // The weight [out, in] and the bias [out] of a layer share fan_in = in.
            long fanIn = i < OutputWeightIndex ? InputSize : HiddenSize;
            float bound = (float)(1.0 / Math.Sqrt(fanIn));

            values[i] = new float[_parameters[i].ElementCount];
            for (int j = 0; j < values[i].Length; j++)
            {
                values[i][j] = bound * ((2f * random.NextSingle()) - 1f);
            }
        }

        return values;
    }

    /// <summary>
    /// Computes the mean cross-entropy loss over a batch and its gradient with respect to every parameter.
    /// </summary>
    /// <param name="parameters">Parameter values in the order of <see cref="Parameters"/>. They are only read.</param>
    /// <param name="inputs">[labels.Length, <see cref="InputSize"/>] row-major inputs.</param>
    /// <param name="labels">Class of each sample, in 0..<see cref="ClassCount"/>-1.</param>
    /// <returns>The loss and one new gradient array per parameter, shaped like the parameter.</returns>
    /// <exception cref="ArgumentException">An argument has the wrong size or a label is out of range, and the message names it.</exception>
    public (float Loss, float[][] Gradients) ComputeGradients(ReadOnlySpan<float[]> parameters, ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels)
    {
        ValidateParameters(parameters);
        ValidateBatch(inputs, labels);

        return Backpropagate(parameters, inputs, labels, 1f / labels.Length);
    }

    /// <summary>
    /// Computes the gradient of worker <paramref name="rank"/> out of <paramref name="worldSize"/> on its
    /// <see cref="WorkerSlice"/> of a batch, scaled so that the mean of all workers' results equals
    /// <see cref="ComputeGradients"/> on the whole batch, within float32 rounding.
    /// </summary>
    /// <param name="parameters">Parameter values in the order of <see cref="Parameters"/>. They are only read.</param>
    /// <param name="batchInputs">Inputs of the whole batch, [batchLabels.Length, <see cref="InputSize"/>] row-major.</param>
    /// <param name="batchLabels">Labels of the whole batch.</param>
    /// <param name="rank">This worker's rank, from 0 to <paramref name="worldSize"/> - 1.</param>
    /// <param name="worldSize">Number of workers, at most the batch size.</param>
    /// <returns>
    /// The worker's loss and gradients: the mean over its n_r samples multiplied by
    /// <see cref="WorkerSlice.GradientScale"/> = W * n_r / B. The loss is scaled the same way, so the mean of the
    /// workers' losses is the batch's mean loss.
    /// </returns>
    /// <exception cref="ArgumentException">An argument is out of range or has the wrong size, and the message names it.</exception>
    public (float Loss, float[][] Gradients) ComputeWorkerGradients(
        ReadOnlySpan<float[]> parameters, ReadOnlySpan<float> batchInputs, ReadOnlySpan<int> batchLabels, int rank, int worldSize)
    {
        ValidateParameters(parameters);
        ValidateBatch(batchInputs, batchLabels);
        var slice = WorkerSlice.Create(batchLabels.Length, worldSize, rank);

        // The mean over the worker's samples weighs each by 1 / n_r, and the scale W * n_r / B turns that into
        // W / B. When W divides B, W / B equals 1 / n_r, so equal slices get exactly the unscaled mean.
        float sampleWeight = (float)worldSize / batchLabels.Length;

        var inputs = batchInputs.Slice(slice.Offset * InputSize, slice.Count * InputSize);
        var labels = batchLabels.Slice(slice.Offset, slice.Count);
        return Backpropagate(parameters, inputs, labels, sampleWeight);
    }

    /// <summary>Computes the mean cross-entropy loss and the fraction of correctly classified samples.</summary>
    /// <param name="parameters">Parameter values in the order of <see cref="Parameters"/>.</param>
    /// <param name="inputs">[labels.Length, <see cref="InputSize"/>] row-major inputs.</param>
    /// <param name="labels">Class of each sample.</param>
    /// <returns>The loss and the accuracy in [0, 1]. The predicted class is the first largest logit, as torch's <c>argmax</c>.</returns>
    /// <exception cref="ArgumentException">An argument has the wrong size or a label is out of range, and the message names it.</exception>
    public (float Loss, float Accuracy) Evaluate(ReadOnlySpan<float[]> parameters, ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels)
    {
        ValidateParameters(parameters);
        ValidateBatch(inputs, labels);

        int sampleCount = labels.Length;
        var forward = Forward(parameters, inputs, sampleCount);
        var probabilities = new float[ClassCount];
        float lossSum = 0f;
        int correctCount = 0;
        for (int i = 0; i < sampleCount; i++)
        {
            var logits = forward.Logits.AsSpan(i * ClassCount, ClassCount);
            lossSum += ComputeSoftmaxCrossEntropy(logits, labels[i], probabilities);
            if (TensorPrimitives.IndexOfMax<float>(logits) == labels[i])
            {
                correctCount++;
            }
        }

        return (lossSum * (1f / sampleCount), (float)correctCount / sampleCount);
    }

    private (float Loss, float[][] Gradients) Backpropagate(
        ReadOnlySpan<float[]> parameters, ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels, float sampleWeight)
    {
        int sampleCount = labels.Length;
        var forward = Forward(parameters, inputs, sampleCount);

        // dLoss/dlogits of sample i is sampleWeight * (softmax(logits_i) - onehot(label_i)).
        var logitGradients = new float[sampleCount * ClassCount];
        float lossSum = 0f;
        for (int i = 0; i < sampleCount; i++)
        {
            var row = logitGradients.AsSpan(i * ClassCount, ClassCount);
            lossSum += ComputeSoftmaxCrossEntropy(forward.Logits.AsSpan(i * ClassCount, ClassCount), labels[i], row);
            TensorPrimitives.Multiply(row, sampleWeight, row);
            row[labels[i]] -= sampleWeight;
        }

        var gradients = new float[_parameters.Length][];
        for (int p = 0; p < _parameters.Length; p++)
        {
            gradients[p] = new float[_parameters[p].ElementCount];
        }

        BackpropagateOutputLayer(forward.Activations, logitGradients, sampleCount, gradients[OutputWeightIndex], gradients[OutputBiasIndex]);
        BackpropagateHiddenLayer(
            parameters[OutputWeightIndex], inputs, forward.PreActivations, logitGradients, sampleCount, gradients[HiddenWeightIndex], gradients[HiddenBiasIndex]);

        return (lossSum * sampleWeight, gradients);
    }

    private ForwardResult Forward(ReadOnlySpan<float[]> parameters, ReadOnlySpan<float> inputs, int sampleCount)
    {
        var preActivations = new float[sampleCount * HiddenSize];
        ApplyLinear(inputs, parameters[HiddenWeightIndex], parameters[HiddenBiasIndex], InputSize, HiddenSize, preActivations);

        var activations = new float[preActivations.Length];
        TensorPrimitives.Max(preActivations, 0f, activations);

        var logits = new float[sampleCount * ClassCount];
        ApplyLinear(activations, parameters[OutputWeightIndex], parameters[OutputBiasIndex], HiddenSize, ClassCount, logits);

        return new ForwardResult(preActivations, activations, logits);
    }

    /// <summary>Computes outputs = inputs · weightᵀ + bias for row-major [samples, inFeatures] inputs and an [outFeatures, inFeatures] weight.</summary>
    private static void ApplyLinear(
        ReadOnlySpan<float> inputs, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, int inFeatures, int outFeatures, Span<float> outputs)
    {
        int sampleCount = outputs.Length / outFeatures;
        for (int i = 0; i < sampleCount; i++)
        {
            var input = inputs.Slice(i * inFeatures, inFeatures);
            for (int j = 0; j < outFeatures; j++)
            {
                outputs[(i * outFeatures) + j] = TensorPrimitives.Dot(input, weight.Slice(j * inFeatures, inFeatures)) + bias[j];
            }
        }
    }

    /// <summary>
    /// Returns -log(softmax(logits)[label]) and writes softmax(logits) to <paramref name="probabilities"/>.
    /// The logits are shifted by their maximum first, as torch's <c>log_softmax</c> does, so <c>Exp</c> cannot overflow.
    /// </summary>
    private static float ComputeSoftmaxCrossEntropy(ReadOnlySpan<float> logits, int label, Span<float> probabilities)
    {
        float maxLogit = TensorPrimitives.Max(logits);
        TensorPrimitives.Subtract(logits, maxLogit, probabilities);
        float shiftedLabelLogit = probabilities[label];

        TensorPrimitives.Exp(probabilities, probabilities);
        float sum = TensorPrimitives.Sum<float>(probabilities);
        TensorPrimitives.Divide(probabilities, sum, probabilities);

        return MathF.Log(sum) - shiftedLabelLogit;
    }

    /// <summary>Accumulates dW2 = dZ2ᵀ · A1 and db2 = Σ dZ2 over the samples in order.</summary>
    private void BackpropagateOutputLayer(
        ReadOnlySpan<float> activations, ReadOnlySpan<float> logitGradients, int sampleCount, Span<float> weightGradient, Span<float> biasGradient)
    {
        for (int i = 0; i < sampleCount; i++)
        {
            var activation = activations.Slice(i * HiddenSize, HiddenSize);
            var logitGradient = logitGradients.Slice(i * ClassCount, ClassCount);
            for (int k = 0; k < ClassCount; k++)
            {
                var row = weightGradient.Slice(k * HiddenSize, HiddenSize);
                TensorPrimitives.MultiplyAdd(activation, logitGradient[k], row, row);
            }

            TensorPrimitives.Add(biasGradient, logitGradient, biasGradient);
        }
    }

    /// <summary>
    /// Propagates the logit gradients through the output weight and the ReLU, then accumulates
    /// dW1 = dZ1ᵀ · X and db1 = Σ dZ1 over the samples in order.
    /// </summary>
    private void BackpropagateHiddenLayer(
        ReadOnlySpan<float> outputWeight,
        ReadOnlySpan<float> inputs,
        ReadOnlySpan<float> preActivations,
        ReadOnlySpan<float> logitGradients,
        int sampleCount,
        Span<float> weightGradient,
        Span<float> biasGradient)
    {
        Span<float> hiddenGradient = new float[HiddenSize];
        for (int i = 0; i < sampleCount; i++)
        {
            // dA1 = dZ2 · W2, summed over the classes in order.
            hiddenGradient.Clear();
            var logitGradient = logitGradients.Slice(i * ClassCount, ClassCount);
            for (int k = 0; k < ClassCount; k++)
            {
                TensorPrimitives.MultiplyAdd(outputWeight.Slice(k * HiddenSize, HiddenSize), logitGradient[k], hiddenGradient, hiddenGradient);
            }

            // ReLU passes the gradient only where its output is positive, as torch's threshold_backward does.
            var preActivation = preActivations.Slice(i * HiddenSize, HiddenSize);
            for (int j = 0; j < HiddenSize; j++)
            {
                if (!(preActivation[j] > 0f))
                {
                    hiddenGradient[j] = 0f;
                }
            }

            var input = inputs.Slice(i * InputSize, InputSize);
            for (int j = 0; j < HiddenSize; j++)
            {
                var row = weightGradient.Slice(j * InputSize, InputSize);
                TensorPrimitives.MultiplyAdd(input, hiddenGradient[j], row, row);
            }

            TensorPrimitives.Add(biasGradient, hiddenGradient, biasGradient);
        }
    }

    private void ValidateParameters(ReadOnlySpan<float[]> parameters)
    {
        if (parameters.Length != _parameters.Length)
        {
            throw new ArgumentException(
                $"Found {parameters.Length} parameter arrays, expected {_parameters.Length} ({string.Join(", ", _parameters.Select(p => p.Name))}). Pass them in the order of Mlp.Parameters.",
                nameof(parameters));
        }

        for (int i = 0; i < _parameters.Length; i++)
        {
            var descriptor = _parameters[i];
            if (parameters[i] is null)
            {
                throw new ArgumentException($"Parameter {i} ('{descriptor.Name}') is null. Pass an array of {descriptor.ElementCount} floats.", nameof(parameters));
            }

            if (parameters[i].Length != descriptor.ElementCount)
            {
                throw new ArgumentException(
                    $"Parameter {i} ('{descriptor.Name}') has {parameters[i].Length} elements, expected {descriptor.ElementCount} for shape {descriptor.FormatShape()}. Pass the arrays in the order of Mlp.Parameters for hidden size {HiddenSize}.",
                    nameof(parameters));
            }
        }
    }

    private void ValidateBatch(ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels)
    {
        if (labels.IsEmpty)
        {
            throw new ArgumentException("The batch has no labels. Pass at least one sample.", nameof(labels));
        }

        if (inputs.Length != labels.Length * InputSize)
        {
            throw new ArgumentException(
                $"The inputs have {inputs.Length} elements, expected {labels.Length} samples x {InputSize} features = {labels.Length * InputSize}. Pass row-major inputs with one label per row.",
                nameof(inputs));
        }

        for (int i = 0; i < labels.Length; i++)
        {
            if ((uint)labels[i] >= (uint)ClassCount)
            {
                throw new ArgumentException(
                    $"Label {labels[i]} of sample {i} is outside the classes 0 to {ClassCount - 1}. Check the labels or the model's class count.",
                    nameof(labels));
            }
        }
    }

    /// <summary>Forward pass buffers: hidden pre-activations Z1, ReLU activations A1 and logits Z2, all row-major per sample.</summary>
    private readonly record struct ForwardResult(float[] PreActivations, float[] Activations, float[] Logits);
}
