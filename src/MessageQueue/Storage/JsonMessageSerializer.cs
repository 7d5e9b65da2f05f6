using System.Text.Json;

namespace MessageQueue;

/// <summary>
/// The default <see cref="IMessageSerializer"/>: System.Text.Json. Give it options to change naming, converters,
/// or to use source-generated contexts (set <see cref="JsonSerializerOptions.TypeInfoResolver"/> to your
/// <c>JsonSerializerContext</c>, or chain several with <c>JsonTypeInfoResolver.Combine</c>).
/// </summary>
public sealed class JsonMessageSerializer : IMessageSerializer
{
    private readonly JsonSerializerOptions _options;

    /// <summary>Creates the serializer with System.Text.Json's web defaults.</summary>
    public JsonMessageSerializer() : this(new JsonSerializerOptions(JsonSerializerDefaults.Web)) { }

    /// <summary>Creates the serializer with the given options.</summary>
    /// <param name="options">The options; made read-only.</param>
    public JsonMessageSerializer(JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.MakeReadOnly(populateMissingResolver: true);
        _options = options;
    }

    /// <inheritdoc/>
    public string ContentType => "application/json";

    /// <inheritdoc/>
    public byte[] Serialize(object body, Type type) => JsonSerializer.SerializeToUtf8Bytes(body, type, _options);

    /// <inheritdoc/>
    public object Deserialize(ReadOnlySpan<byte> data, Type type) =>
        JsonSerializer.Deserialize(data, type, _options) ?? throw new JsonException($"The body deserialized to null, not a '{type.FullName}'.");
}
