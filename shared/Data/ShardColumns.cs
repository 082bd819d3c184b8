using Parquet.Schema;

namespace Training.Shared.Data;

/// <summary>The FineWeb-Edu column names and the schema this project writes.</summary>
public static class ShardColumns
{
    public const string Text = "text";
    public const string Id = "id";
    public const string Dump = "dump";
    public const string Url = "url";
    public const string FilePath = "file_path";
    public const string Language = "language";
    public const string LanguageScore = "language_score";
    public const string TokenCount = "token_count";
    public const string Score = "score";
    public const string IntScore = "int_score";

    // Task shards (seq2seq, distillation): a prompt and the target the model should produce.
    public const string Prompt = "prompt";
    public const string Target = "target";

    // Optional (nullable) columns everywhere, as pyarrow writes the published FineWeb-Edu files.
    internal static readonly DataField<string> TextField = new(Text);
    internal static readonly DataField<string> IdField = new(Id);
    internal static readonly DataField<string> DumpField = new(Dump);
    internal static readonly DataField<string> UrlField = new(Url);
    internal static readonly DataField<string> FilePathField = new(FilePath);
    internal static readonly DataField<string> LanguageField = new(Language);
    internal static readonly DataField<double?> LanguageScoreField = new(LanguageScore);
    internal static readonly DataField<long?> TokenCountField = new(TokenCount);
    internal static readonly DataField<double?> ScoreField = new(Score);
    internal static readonly DataField<long?> IntScoreField = new(IntScore);

    internal static readonly DataField<string> PromptField = new(Prompt);
    internal static readonly DataField<string> TargetField = new(Target);
    internal static ParquetSchema TaskSchema { get; } = new(IdField, PromptField, TargetField);

    internal static ParquetSchema Schema { get; } = new(
        TextField, IdField, DumpField, UrlField, FilePathField, LanguageField,
        LanguageScoreField, TokenCountField, ScoreField, IntScoreField);
}
