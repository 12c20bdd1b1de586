@echo off
rem Runs Strom's kafka-console-consumer.exe (one folder up, in bin\) with the given arguments,
rem as Kafka's bin\windows\kafka-console-consumer.bat does. Example:
rem   bin\windows\kafka-console-consumer.bat --bootstrap-server localhost:9092 --topic quickstart --from-beginning
"%~dp0..\kafka-console-consumer.exe" %*
exit /b %ERRORLEVEL%
