// Parse a Jenkinsfile with Groovy's own compiler and print its calls as JSON.
//
//   groovy scripts/ci-tools/jenkinsfile.groovy Jenkinsfile [--check]
//
// No Jenkins server runs here, so this is what can be checked without one. Compilation stops at
// the CONVERSION phase: the source is parsed and turned into Groovy's syntax tree, and names are
// not resolved, so the pipeline DSL (pipeline, stage, sh, credentials, ...) needs no stubs. A
// syntax error prints the compiler's message, with its line and column, and exits 1.
//
// Without --check, the tree is printed as JSON for the tests to read (what declarative's own
// model holds): each method call as {"call": name, "args": [...], "body": [...]}, a closure
// argument's statements as its body, named arguments as a map, an assignment (environment {})
// as {"assign": name, "value": ...}, a double-quoted string with ${...} as {"gstring": text}, and
// any other expression as {"expr": its source text}.
import groovy.json.JsonOutput
import org.codehaus.groovy.ast.expr.*
import org.codehaus.groovy.ast.stmt.*
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.MultipleCompilationErrorsException
import org.codehaus.groovy.control.Phases
import org.codehaus.groovy.syntax.Types

if (args.length < 1 || args.length > 2 || (args.length == 2 && args[1] != '--check')) {
    System.err.println('usage: groovy jenkinsfile.groovy JENKINSFILE [--check]')
    System.exit(2)
}
def file = new File(args[0])
if (!file.isFile()) {
    System.err.println("jenkinsfile: ${args[0]}: no such file")
    System.exit(2)
}
def unit = new CompilationUnit()
unit.addSource(file)
try {
    unit.compile(Phases.CONVERSION)
} catch (MultipleCompilationErrorsException e) {
    System.err.println("jenkinsfile: ${args[0]} does not parse:")
    System.err.println(e.message)
    System.exit(1)
}
if (args.length == 2) {
    println "jenkinsfile: ${args[0]} parses"
    System.exit(0)
}

def expr
def statements

expr = { Expression e ->
    if (e instanceof ConstantExpression) {
        return e.value
    }
    if (e instanceof GStringExpression) {
        return [gstring: e.text]
    }
    if (e instanceof ClosureExpression) {
        return [closure: statements(e.code)]
    }
    if (e instanceof MapExpression) {
        return e.mapEntryExpressions.collectEntries { [(expr(it.keyExpression).toString()): expr(it.valueExpression)] }
    }
    if (e instanceof ListExpression) {
        return e.expressions.collect { expr(it) }
    }
    if (e instanceof MethodCallExpression) {
        def args = e.arguments instanceof TupleExpression ? e.arguments.expressions : [e.arguments]
        def call = [call: e.methodAsString, line: e.lineNumber, args: [], body: []]
        args.each {
            if (it instanceof ClosureExpression) {
                call.body.addAll(statements(it.code))
            } else {
                call.args << expr(it)
            }
        }
        return call
    }
    if (e instanceof DeclarationExpression) {
        return [declare: e.leftExpression.text, value: expr(e.rightExpression)]
    }
    if (e instanceof BinaryExpression && e.operation.type == Types.ASSIGN) {
        return [assign: e.leftExpression.text, value: expr(e.rightExpression)]
    }
    return [expr: e.text]
}

statements = { Statement s ->
    def list = s instanceof BlockStatement ? s.statements : [s]
    list.collect {
        if (it instanceof ExpressionStatement) {
            return expr(it.expression)
        }
        if (it instanceof ReturnStatement) {
            return expr(it.expression)
        }
        return [statement: it.class.simpleName, line: it.lineNumber]
    }
}

def module = unit.AST.modules[0]
println JsonOutput.prettyPrint(JsonOutput.toJson(statements(module.statementBlock)))
